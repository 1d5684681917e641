"""Process-wide tuning for the long-running workers.

Python's cycle collector runs a young-generation pass every 700 net container allocations, and
a batch of 2,000 events allocates hundreds of thousands (decoded events, rule states, rows): the
passes, and the older-generation passes they trigger over everything the worker keeps (the
working set, faust's and aiokafka's structures), cost a third of the earning worker's CPU
(measured: 168 µs of Python per event with the default thresholds, 101 µs without the
collector). Almost all of that garbage is acyclic and freed by reference counting anyway, so
the worker collects less often rather than never: cycles are still found, just in bigger,
rarer passes. ``gc.freeze()`` moves what start-up created (modules, settings, the app) out of
the collector's view for good, since it lives as long as the process.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["CollectBetweenBatches", "tune_garbage_collector"]


def tune_garbage_collector(gen0_threshold: int) -> None:
    _, gen1, gen2 = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0_threshold, gen1, gen2)


class CollectBetweenBatches:
    """The cycle collector for a process that does nothing but run batches (a lane process).

    Measured in the lane processes with the thresholds above: each young-generation pass that
    fell inside a batch took 20-30 ms (it scans everything the batch still holds: decoded events,
    states, rows), about one per batch, plus the older passes they triggered: ~20 µs of CPU per
    event, a tenth of the lane. Between batches almost none of that is alive any more: reference
    counting freed it when the batch returned. So the automatic collector is off, and after
    each batch

    * a young pass finds the batch's cycles (exceptions with tracebacks, SQLAlchemy's
      internals) among the few objects still young: the rule states and profiles the working
      set keeps, nothing else;
    * what survives is frozen (moved where no pass scans it again); the working set's old
      entries are still freed by reference counting when they are replaced or evicted;
    * a full pass over everything (frozen included) runs when the heap has grown by ``growth``
      since the last one, the same amortisation Python uses for its oldest generation: a cycle
      that forms among old objects is found late, never leaked for good, and garbage can make
      the heap at most ``growth`` times what is alive, or ``floor_blocks`` (~100-200 MB) when
      that is more: below it a full pass (~250 ms at 1M blocks, measured) would cost latency
      for little memory. The heap is measured in allocated memory
      blocks (``sys.getallocatedblocks``, ~0.1 ms), not frozen objects: counting those walks
      them all (``gc.get_freeze_count`` took 8 ms at 600,000 objects, per batch).
    """

    def __init__(self, *, growth: float = 1.5, floor_blocks: int = 2_000_000) -> None:
        self._growth = growth
        self._floor = floor_blocks
        self._full_above = floor_blocks
        self.full_collections = 0
        gc.disable()
        self.full_collection()
        #: full passes since start-up (the one above, which freezes start-up's objects, aside)
        self.full_collections = 0

    def after_batch(self) -> None:
        gc.collect(0)
        gc.freeze()
        if sys.getallocatedblocks() > self._full_above:
            self.full_collection()

    def full_collection(self) -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._full_above = max(self._floor, int(sys.getallocatedblocks() * self._growth))
        self.full_collections += 1
