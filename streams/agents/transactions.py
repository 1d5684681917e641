"""Agent for ``bank.transactions``: validate, record in batches, dead-letter the bad ones.

Each fetched batch is recorded in one database transaction (see streams/fastpath.py for why
batches bypass faust's per-message path); its offsets are acked only after that commit. If the
database stays unavailable through the retries, the process exits hard: nothing of the batch
was acked, so a restarted worker replays it, and the inbox makes the replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence

import faust
from faust.types import Message

from points.ingest import BatchOutcome, IngestService, RawMessage
from points.settings import Settings
from streams.fastpath import BatchingApp

__all__ = ["process_with_retry", "register_transactions_agent"]

log = logging.getLogger(__name__)

DB_RETRY_ATTEMPTS = 5
EXIT_DATABASE_UNAVAILABLE = 75  # EX_TEMPFAIL: a supervisor should restart us


def to_raw(message: Message) -> RawMessage:
    return RawMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
    )


async def process_with_retry(
    process: Callable[[Sequence[RawMessage]], BatchOutcome],
    batch: Sequence[RawMessage],
    *,
    attempts: int = DB_RETRY_ATTEMPTS,
    exit_process: Callable[[int], None] = os._exit,
) -> BatchOutcome:
    """Run the batch in a worker thread, retrying transient database errors with backoff."""
    delay_s = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return await asyncio.to_thread(process, batch)
        except Exception:
            log.exception("batch of %d failed (attempt %d/%d)", len(batch), attempt, attempts)
            if attempt == attempts:
                break
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)
    log.critical("database unavailable; exiting without acking so the batch is replayed")
    exit_process(EXIT_DATABASE_UNAVAILABLE)
    raise SystemExit(EXIT_DATABASE_UNAVAILABLE)  # only reached when exit_process is a fake


def register_transactions_agent(
    app: BatchingApp, settings: Settings, service: IngestService
) -> faust.TopicT:
    topic = app.topic(
        settings.kafka.topics.bank_transactions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka.topic_partitions,
    )

    @app.batch_agent(topic)
    async def record_transactions(messages: Sequence[Message]) -> None:
        started = time.perf_counter()
        outcome = await process_with_retry(service.process, [to_raw(m) for m in messages])
        log.info(
            "batch=%d stored=%d duplicates=%d rejected=%d in %.1f ms",
            len(messages),
            outcome.stored,
            outcome.duplicates,
            outcome.rejected,
            (time.perf_counter() - started) * 1000,
        )

    return topic
