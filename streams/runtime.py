"""Process-wide tuning for the long-running workers, and how they wait out an outage.

Outages (:class:`OutageWatch`, :func:`process_with_retry`): a batch whose transaction fails is
retried with capped, jittered exponential backoff for up to the configured tolerance
(``POINTS_WORKER__DB_OUTAGE_TOLERANCE_S``), with a WARNING every few seconds that names what is
awaited and for how long already; then the process exits with :data:`EXIT_TEMPORARY_FAILURE`
(75) without acking, so a supervisor restarts it and the replay is harmless. ``os._exit``, not
an exception: faust would turn an exception into its own exit code after a shutdown that waits
for the very lanes that are stuck.

Garbage collection:

Python's cycle collector runs a young-generation pass every 700 net container allocations, and
a batch of 2,000 events allocates hundreds of thousands (decoded events, rule states, rows): the
passes, and the older-generation passes they trigger over everything the worker keeps (the
working set, faust's and aiokafka's structures), cost a third of the earning worker's CPU
(measured: 168 µs of Python per event with the default thresholds, 101 µs without the
collector). Almost all of that garbage is acyclic and freed by reference counting anyway, so
the worker collects less often rather than never: cycles are still found, just in bigger,
rarer passes. ``gc.freeze()`` moves what start-up created (modules, settings, the app) out of
the collector's view for good, since it lives as long as the process. A batch run in a thread of
the worker runs with the collector paused (:func:`without_cycle_collector`); a lane process
collects only between batches (:class:`CollectBetweenBatches`). This module is the only place
that sets the collector's policy: ``points/`` is library code the API's threads call too.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

__all__ = [
    "EXIT_TEMPORARY_FAILURE",
    "CollectBetweenBatches",
    "OutageWatch",
    "RepeatedLogFilter",
    "give_up",
    "limit_repeated_logs",
    "process_with_retry",
    "tune_garbage_collector",
    "without_cycle_collector",
]

log = logging.getLogger(__name__)

#: EX_TEMPFAIL: the documented exit code of a worker that gave up waiting for the database
#: or the broker (or lost a lane process); a supervisor should restart it.
EXIT_TEMPORARY_FAILURE = 75

T = TypeVar("T")
B = TypeVar("B", bound=Sequence[object])


class OutageWatch:
    """How long one dependency has been failing: when to retry, when to say so again, when
    to give up. ``failed()`` after each failure, ``recovered()`` after a success.

    Backoff doubles from ``first_delay_s`` up to ``max_delay_s``, each delay drawn uniformly
    from its upper half (jitter: workers that lost the same database do not return in step).
    """

    def __init__(
        self,
        awaited: str,
        tolerance_s: float,
        *,
        report_every_s: float = 5.0,
        first_delay_s: float = 0.2,
        max_delay_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.awaited = awaited
        self.tolerance_s = tolerance_s
        self._report_every_s = report_every_s
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self._clock = clock
        self._since: float | None = None
        self._reported_at = 0.0
        self._delay_s = first_delay_s
        #: when the next attempt is due (clock time); 0 while nothing failed
        self.retry_at = 0.0

    @property
    def failing(self) -> bool:
        return self._since is not None

    def waited_s(self) -> float:
        return 0.0 if self._since is None else self._clock() - self._since

    def failed(self, error: BaseException) -> bool:
        """Record a failure; True once the outage lasted longer than the tolerance."""
        now = self._clock()
        if self._since is None:
            self._since = self._reported_at = now
            log.warning(
                "waiting for %s (giving up after %.0f s): %s",
                self.awaited, self.tolerance_s, _describe(error), exc_info=error,
            )  # fmt: skip
        elif now - self._reported_at >= self._report_every_s:
            self._reported_at = now
            log.warning(
                "still waiting for %s: %.1f s of %.0f s: %s",
                self.awaited, now - self._since, self.tolerance_s, _describe(error),
            )  # fmt: skip
        waited_s = now - self._since
        # The last attempt falls on the deadline, not up to a whole delay after it.
        left_s = self.tolerance_s - waited_s + 0.01
        delay_s = min(random.uniform(self._delay_s / 2, self._delay_s), left_s)
        self._delay_s = min(self._delay_s * 2, self._max_delay_s)
        self.retry_at = now + delay_s
        return waited_s >= self.tolerance_s

    def next_delay_s(self) -> float:
        return max(0.0, self.retry_at - self._clock())

    def recovered(self) -> None:
        if self._since is not None:
            log.warning("%s is back after %.1f s", self.awaited, self._clock() - self._since)
        self._since = None
        self._delay_s = self._first_delay_s
        self.retry_at = 0.0


class RepeatedLogFilter(logging.Filter):
    """Let a message through at most once per ``every_s`` per (logger, message template);
    the next one that passes says how many like it were held back.

    Why: while the broker is down, aiokafka logs "Unable connect to node ..." and "Unable to
    update metadata ..." at ERROR each time it retries (measured: ~6,000 lines a second for
    as long as the outage lasts). One line every few seconds says the same.
    """

    def __init__(self, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every_s = every_s
        self._clock = clock
        # (logger, template) -> [when last let through, held back since]
        self._seen: dict[tuple[str, object], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self._clock()
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) > 1_000:  # templates are few; keep the map bounded anyway
                self._seen.clear()
            self._seen[key] = [now, 0]
            return True
        if now - seen[0] < self._every_s:
            seen[1] += 1
            return False
        held_back = int(seen[1])
        seen[0], seen[1] = now, 0
        if held_back and isinstance(record.args, tuple):
            # Without arguments the message was never %-formatted: escape it before adding some.
            template = str(record.msg) if record.args else str(record.msg).replace("%", "%%")
            record.msg = f"{template} (and %d more like it in %.0f s)"
            record.args = (*record.args, held_back, self._every_s)
        return True


def limit_repeated_logs(prefix: str = "aiokafka", every_s: float = 5.0) -> RepeatedLogFilter:
    """Put one :class:`RepeatedLogFilter` on every logger named ``prefix`` or below it that
    exists now (call it once the clients' modules are imported)."""
    limiter = RepeatedLogFilter(every_s)
    names = [prefix, *(n for n in logging.Logger.manager.loggerDict if n.startswith(prefix + "."))]
    for name in names:
        logging.getLogger(name).addFilter(limiter)
    return limiter


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def give_up(reason: str, exit_process: Callable[[int], None] = os._exit) -> None:
    """Log why and leave with :data:`EXIT_TEMPORARY_FAILURE`; lane children follow (they die
    with their parent, streams/lane_processes.py)."""
    log.critical("%s; exiting with code %d", reason, EXIT_TEMPORARY_FAILURE)
    logging.shutdown()
    exit_process(EXIT_TEMPORARY_FAILURE)
    raise SystemExit(EXIT_TEMPORARY_FAILURE)  # only reached when exit_process is a fake


async def process_with_retry(
    run: Callable[[B], Awaitable[T]],
    batch: B,
    *,
    tolerance_s: float,
    exit_process: Callable[[int], None] = os._exit,
    watch: OutageWatch | None = None,
) -> T:
    """``await run(batch)``, retrying failures with backoff for up to ``tolerance_s`` seconds
    of outage, then exit 75 with nothing of the batch acked. A dead lane process (its pool is
    broken for good) is not waited for."""
    try:
        return await run(batch)  # the hot path: one call, nothing set up
    except BrokenProcessPool:
        give_up("a lane process died", exit_process)
        raise  # unreachable; for the type checker
    except Exception as exc:
        first_error = exc
    watch = watch or OutageWatch(
        f"the database to commit a batch of {len(batch)} messages", tolerance_s
    )
    error: Exception = first_error
    while not watch.failed(error):
        await asyncio.sleep(watch.next_delay_s())
        try:
            result = await run(batch)
        except BrokenProcessPool:
            give_up("a lane process died", exit_process)
            raise
        except Exception as exc:
            error = exc
        else:
            watch.recovered()
            return result
    give_up(
        f"{watch.awaited}: still failing after {watch.waited_s():.1f} s ({_describe(error)})",
        exit_process,
    )
    raise AssertionError("unreachable")


def tune_garbage_collector(gen0_threshold: int) -> None:
    _, gen1, gen2 = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0_threshold, gen1, gen2)


_paused_lock = threading.Lock()
_paused_batches = 0  # batches running under without_cycle_collector, all threads
_paused_by_us = False  # whether the first of them turned the collector off


def without_cycle_collector(run: Callable[..., T], *args: object) -> T:
    """``run(*args)`` (one batch) with Python's cycle collector paused; for a worker thread.

    A batch allocates tens of thousands of objects that all live until it returns (drafts,
    lots, rows), so the cyclic collector runs many times mid-batch and promotes them to the
    old generation, which then triggers full collections of the worker's whole heap: over a
    third of the batch's CPU in the earning worker. Refcounting frees nearly all of it when the
    batch returns, so pausing the collector skips that work rather than deferring it; cycles
    made meanwhile (exceptions with tracebacks) are collected afterwards. Batches of several
    threads may overlap: the collector comes back on when the last one returns, and only if
    the first one found it on (a lane process keeps it off: CollectBetweenBatches).
    """
    global _paused_batches, _paused_by_us
    with _paused_lock:
        if _paused_batches == 0:
            _paused_by_us = gc.isenabled()
            gc.disable()
        _paused_batches += 1
    try:
        return run(*args)
    finally:
        with _paused_lock:
            _paused_batches -= 1
            if _paused_batches == 0 and _paused_by_us:
                gc.enable()


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
