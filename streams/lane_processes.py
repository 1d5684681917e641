"""The earning worker's database lanes, each in a child process of its own.

Why: a lane's work is mostly Python (decoding, rules, the ledger's decisions, encoding rows),
and Python runs one thread at a time per process. With both lanes in the worker process the
worker could not use more than one core however many lanes it had (measured: ~0.9 core busy,
the other core half idle; two whole worker processes did 1.6 times the events/s of one). A child
process per lane lets the lanes' Python run on both cores, while the worker process keeps the
consumer, the acks and offset commits, and the outbox relay.

What does not change: the worker is still one member of the consumer group; lane ``n`` (its
partitions ``p % lanes == n``) always runs in the same child, one batch at a time, so the
child's working set (points/earning/working_set.py) stays the memory of exactly those
customers; a batch is acked only after the child committed it and answered.

Failure: a child that dies takes its lane's batch with it (never acked). The lane's executor is
then broken, every retry fails, and the worker exits with code 75 like on any lasting database
failure: the supervisor restarts it and the replay is harmless. A child whose parent died
finishes the batch it is in (committing it or not), then finds its pipe closed and exits.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from points.earning import BatchOutcome, EarningService
from points.ingest import RawMessage
from streams.runtime import CollectBetweenBatches

__all__ = ["LaneProcesses"]

# The service of the lane this child process runs, and its cycle collector (set at start-up).
_service: EarningService | None = None
_collector: CollectBetweenBatches | None = None


def _start_lane() -> None:
    """Child start-up: the same settings as the worker (the environment is inherited)."""
    global _service, _collector
    from points.db import make_engine
    from points.settings import load_settings

    settings = load_settings()
    engine = make_engine(settings.database_url, echo=settings.database.echo)
    _service = EarningService.from_settings(settings, engine)
    # A lane process runs nothing but batches: collect cycles between them, not inside.
    _collector = CollectBetweenBatches()


def _process(batch: Sequence[tuple[str, int, int, bytes | None, bytes | None]]) -> BatchOutcome:
    """One lane batch; the messages travel as plain tuples (pickled several times faster than
    RawMessage objects)."""
    assert _service is not None and _collector is not None, "lane process not started"
    try:
        return _service.process([RawMessage(*fields) for fields in batch])
    finally:
        _collector.after_batch()


def _forget() -> None:
    if _service is not None:
        _service.forget_working_set()


class LaneProcesses:
    """One single-process executor per lane (so a lane always lands in the same child)."""

    def __init__(self, lanes: int) -> None:
        # spawn, not fork: the worker runs threads (the consumer's, the executor's), and a
        # forked child would inherit their locks in whatever state they were in.
        context = multiprocessing.get_context("spawn")
        self._executors = [
            ProcessPoolExecutor(
                max_workers=1,
                mp_context=context,
                initializer=_start_lane,
            )
            for _ in range(lanes)
        ]

    @property
    def lanes(self) -> int:
        return len(self._executors)

    def runner(self, lane: int) -> _LaneRunner:
        return _LaneRunner(self._executors[lane])

    def forget_working_sets(self) -> None:
        """Ask every lane to drop its remembered customers (queued behind its current batch)."""
        for executor in self._executors:
            executor.submit(_forget)

    def shutdown(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)


class _LaneRunner:
    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self._executor = executor

    async def __call__(self, batch: Sequence[RawMessage]) -> BatchOutcome:
        loop = asyncio.get_running_loop()
        plain = [(m.topic, m.partition, m.offset, m.key, m.value) for m in batch]
        return await loop.run_in_executor(self._executor, _process, plain)
