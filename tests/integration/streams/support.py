"""Helpers for tests that run real faust workers against the stack's broker and PostgreSQL.

Each test gets its own topic names and consumer group (a random suffix), so tests never see
each other's messages, and runs workers as subprocesses so they can be killed for real.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from points.settings import Settings, load_settings
from streams.topics import ensure_topics_sync
from tests.integration.processes import ManagedProcess


@dataclass
class StreamEnv:
    """Settings for one test's isolated set of topics and group, plus the env for workers."""

    suffix: str
    bootstrap: str
    database_url: str
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
        env.update(
            {
                "POINTS_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "POINTS_KAFKA__TOPIC_PARTITIONS": str(self.partitions),
                "POINTS_DATABASE__URL": self.database_url,
                "POINTS_WORKER__APP_ID": f"points-test-{self.suffix}",
                "POINTS_WORKER__BATCH_WAIT_MS": "50",
                "POINTS_WORKER__COMMIT_INTERVAL_MS": "200",
                "POINTS_WORKER__SESSION_TIMEOUT_MS": "6000",
            }
        )
        for name in (
            "bank_transactions",
            "bank_customers",
            "customer_activity",
            "points_ledger",
            "points_dlq",
        ):
            env[f"POINTS_KAFKA__TOPICS__{name.upper()}"] = self.topic(name)
        env.update(self.extra_env)
        return env

    def topic(self, name: str) -> str:
        return f"t{self.suffix}.{name.replace('_', '.')}"

    def settings(self) -> Settings:
        saved = dict(os.environ)
        try:
            os.environ.update(self.env)
            return load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)


def new_stream_env(bootstrap: str, database_url: str, partitions: int = 4) -> StreamEnv:
    env = StreamEnv(uuid.uuid4().hex[:10], bootstrap, database_url, partitions)
    ensure_topics_sync(env.settings())
    return env


class Worker(ManagedProcess):
    """A `python -m streams.worker` subprocess for one test's topics and database."""

    def __init__(self, env: StreamEnv, log_path: Path) -> None:
        super().__init__(["streams.worker"], env.env, log_path)


def purchase(
    event_id: str, customer_id: str, amount_minor: int = 10_000, **extra: Any
) -> dict[str, Any]:
    occurred = datetime(2026, 11, 27, 9, 0, tzinfo=UTC) + timedelta(seconds=hash(event_id) % 3600)
    return {
        "event_type": "purchase",
        "event_id": event_id,
        "customer_id": customer_id,
        "amount_minor": amount_minor,
        "currency": "CNY",
        "mcc": "5411",
        "merchant_id": "m-001",
        "channel": "card_present",
        "occurred_at": occurred.isoformat(),
        **extra,
    }


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    try:
        futures = []
        for key, value in records:
            futures.append(await producer.send(topic, value=value, key=key))
            sent += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def produce_sync(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
    return asyncio.run(produce(bootstrap, topic, list(records)))


async def consume_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60
) -> list[Any]:
    """Read a topic from the start until ``expected`` records arrived or the timeout passed."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(items)
    finally:
        await consumer.stop()
    return records


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    on_timeout: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{on_timeout()}")


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()
