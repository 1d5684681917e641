"""Agent for ``bank.transactions``: validate, record in batches, dead-letter the bad ones.

Offsets are acked by ``take_events`` only after the loop body finishes, i.e. after the
database transaction committed. If the database write fails for good, we stop the process
hard instead of raising: faust acks a take-buffer in a ``finally`` even when the body raises,
and an acked offset may be committed — which would lose the batch. A hard exit commits
nothing, and the restarted worker replays the batch, which the inbox makes harmless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust

from points.ingest import BatchOutcome, IngestService, RawMessage
from points.settings import Settings

__all__ = ["register_transactions_agent"]

log = logging.getLogger(__name__)

DB_RETRY_ATTEMPTS = 5
EXIT_DATABASE_UNAVAILABLE = 75  # EX_TEMPFAIL: a supervisor should restart us


def _raw(event: Any) -> RawMessage:
    message = event.message
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
    app: faust.App, settings: Settings, service: IngestService
) -> faust.types.AgentT:
    topic = app.topic(
        settings.kafka.topics.bank_transactions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka.topic_partitions,
    )
    batch_size_max = settings.worker.batch_size_max
    within_s = settings.worker.batch_wait_ms / 1000

    async def consume(stream: faust.StreamT) -> None:
        async for events in stream.take_events(batch_size_max, within=within_s):
            started = time.perf_counter()
            outcome = await process_with_retry(service.process, [_raw(e) for e in events])
            log.info(
                "batch=%d stored=%d duplicates=%d rejected=%d in %.1f ms",
                len(events),
                outcome.stored,
                outcome.duplicates,
                outcome.rejected,
                (time.perf_counter() - started) * 1000,
            )

    return app.agent(topic, name="bank-transactions")(consume)
