"""The worker's process-wide tuning."""

from __future__ import annotations

import gc

from streams.runtime import tune_garbage_collector


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
