"""The workers' process-wide tuning of Python's cycle collector."""

from __future__ import annotations

import gc
import re
import sys
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.runtime import (
    CollectBetweenBatches,
    tune_garbage_collector,
    without_cycle_collector,
)


def test_tuning_raises_the_young_threshold_and_freezes_what_start_up_created() -> None:
    """Collections get rarer (the young threshold is raised, the older ones kept) and the
    objects alive at start-up leave the collector's view; the collector stays enabled."""
    before = gc.get_threshold()
    try:
        tune_garbage_collector(60_000)
        assert gc.get_threshold() == (60_000, before[1], before[2])
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class _Node:
    """A container that can sit in a reference cycle and be watched with a weak reference."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def restore_collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


@pytest.mark.usefixtures("restore_collector")
def test_lane_collector_turns_the_automatic_collector_off() -> None:
    """Inside a batch no collection pass runs by itself (that was ~20 µs of CPU per event)."""
    CollectBetweenBatches()
    assert not gc.isenabled()


@pytest.mark.usefixtures("restore_collector")
def test_a_cycle_left_by_a_batch_is_freed_right_after_the_batch() -> None:
    """Garbage cycles a batch made (tracebacks, driver internals) do not outlive the batch."""
    collector = CollectBetweenBatches()
    dead = _cycle()
    assert dead() is not None  # nothing collects while the batch runs
    collector.after_batch()
    assert dead() is None


@pytest.mark.usefixtures("restore_collector")
def test_what_a_batch_keeps_is_frozen_out_of_later_passes() -> None:
    """The working set's new entries survive the batch and no young pass scans them again."""
    collector = CollectBetweenBatches()
    kept = [_Node() for _ in range(1_000)]
    frozen_before = gc.get_freeze_count()
    collector.after_batch()
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    assert all(not any(node is k for k in gc.get_objects(0)) for node in kept[:3])


@pytest.mark.usefixtures("restore_collector")
def test_a_cycle_among_frozen_objects_is_found_once_the_heap_has_grown() -> None:
    """A cycle that forms among already frozen objects is not leaked for good: the full pass
    that runs when the heap has grown by the growth factor frees it."""
    collector = CollectBetweenBatches(growth=1.2, floor_blocks=0)
    held = [_Node(), _Node()]
    dead = weakref.ref(held[0])
    collector.after_batch()  # both nodes are frozen now
    held[0].other, held[1].other = held[1], held[0]
    held.clear()  # the cycle is garbage, but frozen: young passes never look at it
    collector.after_batch()
    assert dead() is not None
    assert collector.full_collections == 0

    growth = [[index] for index in range(sys.getallocatedblocks() // 2)]
    collector.after_batch()
    assert collector.full_collections == 1
    assert dead() is None
    del growth


def test_a_batch_in_a_worker_thread_runs_with_the_collector_paused() -> None:
    """The collector is off while the batch runs and on again once it returns, even when the
    batch raises; the batch's result comes back unchanged."""
    assert gc.isenabled()
    assert without_cycle_collector(gc.isenabled) is False
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError):
        without_cycle_collector(lambda: 1 // 0)
    assert gc.isenabled()
    assert without_cycle_collector(lambda a, b: a + b, 2, 3) == 5


def test_overlapping_batches_turn_the_collector_back_on_only_after_the_last() -> None:
    """Two threads' batches overlap: the first to return must not re-enable the collector
    under the other one."""
    first_inside, first_may_return = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        first_inside.set()
        first_may_return.wait(10)
        seen["first, after the second returned"] = gc.isenabled()

    def second() -> None:
        first_inside.wait(10)
        seen["second"] = gc.isenabled()

    worker = threading.Thread(target=without_cycle_collector, args=(first,))
    worker.start()
    without_cycle_collector(second)
    first_may_return.set()
    worker.join(10)
    assert seen == {"second": False, "first, after the second returned": False}
    assert gc.isenabled()


def test_a_collector_already_off_stays_off() -> None:
    """A lane process keeps the automatic collector off for good: a batch does not turn it on."""
    gc.disable()
    try:
        without_cycle_collector(lambda: None)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_domain_never_sets_the_collector_policy() -> None:
    """``points/`` is library code the API's threads call too: only ``streams/`` (the worker,
    which owns its process) may pause or tune the cycle collector."""
    root = Path(__file__).resolve().parents[2] / "points"
    importing_gc = [str(path.relative_to(root.parent)) for path in sorted(root.rglob("*.py"))
                    if re.search(r"^\s*(import gc\b|from gc import)", path.read_text(), re.M)]
    assert importing_gc == []
