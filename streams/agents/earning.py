"""The points-earning agent: bank.transactions, customer.activity and bank.customers.

Each fetched batch (across the three topics) goes to ``EarningService.process``: one database
transaction holding the inbox rows, the ledger entries, the per-customer rule state and the
outbox. Offsets are acked only after it commits (streams/fastpath.py). If the database stays
unavailable longer than ``POINTS_WORKER__DB_OUTAGE_TOLERANCE_S`` (streams/runtime.py), the
process exits with code 75: nothing of the batch was acked, a restarted worker replays it, and
the inbox makes the replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.types import Message

from points.decoding import RawMessage
from points.earning import BatchOutcome, EarningService
from points.settings import Settings
from streams.fastpath import BatchingApp
from streams.lane_processes import LaneProcesses
from streams.runtime import process_with_retry, without_cycle_collector

__all__ = ["register_earning_agent"]

log = logging.getLogger(__name__)


def to_raw(message: Message) -> RawMessage:
    return RawMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
    )


def register_earning_agent(
    app: BatchingApp,
    settings: Settings,
    service: EarningService,
    lane_processes: LaneProcesses | None = None,
) -> list[faust.TopicT]:
    """The agent; with ``lane_processes`` each lane's batches run in that lane's child process
    (streams/lane_processes.py), otherwise in a thread of this process with ``service``."""
    topics = [
        app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.kafka.topic_partitions,
        )
        for name in service.topics
    ]

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_customers(sender: object, revoked: object, **kwargs: Any) -> None:
        # Partitions may move to another worker: what we remember of their customers could
        # go stale (the versioned write would catch it; forgetting saves the retry).
        service.forget_working_set()
        if lane_processes is not None:
            lane_processes.forget_working_sets()

    async def in_a_thread(batch: Sequence[RawMessage]) -> BatchOutcome:
        return await asyncio.to_thread(without_cycle_collector, service.process, batch)

    runners: list[Callable[[Sequence[RawMessage]], Awaitable[BatchOutcome]]] = (
        [lane_processes.runner(n) for n in range(lane_processes.lanes)]
        if lane_processes is not None
        else [in_a_thread]
    )

    tolerance_s = settings.worker.db_outage_tolerance_s

    @app.batch_agent(*topics)
    async def earn_points(messages: Sequence[Message]) -> None:
        # One lane's batch (streams/fastpath.py): lanes hold disjoint partitions, so disjoint
        # customers (every topic is keyed by customer id with the same partition count), and
        # each is its own transaction.
        started = time.perf_counter()
        # Every message of a lane's batch has the same partition % lanes: that is the lane.
        run = runners[messages[0].partition % len(runners)]
        outcome = await process_with_retry(
            run, [to_raw(m) for m in messages], tolerance_s=tolerance_s
        )
        log.info(
            "batch=%d stored=%d duplicates=%d rejected=%d earned=%d clawed_back=%d in %.1f ms",
            outcome.messages,
            outcome.stored,
            outcome.duplicates,
            outcome.rejected,
            outcome.points_earned,
            outcome.points_clawed_back,
            (time.perf_counter() - started) * 1000,
        )

    return topics
