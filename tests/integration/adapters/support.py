"""Run ``python -m adapters.simulator`` against the real broker with isolated topics, and
talk to it the way the exchange does (signed requests out, verified replies in)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from adapters.config import load_partners_config, resolve_keys
from adapters.registry import PartnerRegistry, build_registry
from adapters.topics import PartnerTopics, ensure_topics
from points.ports import Accepted, InboundMessage, OutboundMessage, Refused
from points.settings import KafkaSettings, load_settings
from tests.integration.processes import ManagedProcess

ROOT = Path(__file__).resolve().parents[3]
PARTNERS = ("ridehail", "eshop", "airline")


@dataclass
class PartnerEnv:
    """One test's topic prefix, keys and environment for simulator subprocesses."""

    bootstrap: str
    prefix: str
    keys_env: dict[str, str]
    registry: PartnerRegistry = field(init=False)

    def __post_init__(self) -> None:
        config = load_partners_config()
        self.registry = build_registry(
            config, resolve_keys(config, self.keys_env), PartnerTopics(prefix=self.prefix)
        )

    @property
    def topics(self) -> PartnerTopics:
        return PartnerTopics(prefix=self.prefix)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
        env["POINTS_KAFKA__BOOTSTRAP_SERVERS"] = self.bootstrap
        env.update(self.keys_env)
        return env


def new_partner_env(bootstrap: str) -> PartnerEnv:
    config = load_partners_config()
    keys_env = {p.signing_keys[0].env: secrets.token_hex(32) for p in config.partners.values()}
    env = PartnerEnv(bootstrap, f"t{uuid.uuid4().hex[:10]}.", keys_env)
    names = [t for pid in PARTNERS for t in (env.topics.requests(pid), env.topics.events(pid))]
    partitions = load_settings().kafka.topic_partitions
    asyncio.run(ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), names, partitions))
    return env


class SimulatorProcess(ManagedProcess):
    """A ``python -m adapters.simulator`` subprocess with its output captured to a file."""

    def __init__(self, env: PartnerEnv, args: Sequence[str], log_path: Path) -> None:
        module_and_args = ["adapters.simulator", "--topic-prefix", env.prefix, *args]
        super().__init__(module_and_args, env.env, log_path)

    def wait_for_log(self, text: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return
            assert self.process is not None
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"simulator log never showed {text!r}:\n{self.log()[-3000:]}")


async def _publish(bootstrap: str, messages: Sequence[OutboundMessage]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for m in messages:
            await producer.send_and_wait(m.topic, m.value, key=m.key, headers=list(m.headers))
    finally:
        await producer.stop()


def publish(env: PartnerEnv, messages: Sequence[OutboundMessage]) -> None:
    """What the outbox relay will do: send the adapter's bytes and headers unchanged."""
    asyncio.run(_publish(env.bootstrap, messages))


async def _collect(
    bootstrap: str, topic: str, done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout_s: float,
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for items in batch.values():
                records.extend(items)
    finally:
        await consumer.stop()
    return records


def collect(
    env: PartnerEnv,
    partner_id: str,
    done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout_s: float = 60,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Records of a partner's events topic from the start, until ``done`` or the timeout."""
    return asyncio.run(_collect(env.bootstrap, env.topics.events(partner_id), done, timeout_s))


def interpret(env: PartnerEnv, record: ConsumerRecord[bytes, bytes]) -> Accepted | Refused:
    """Verify and decode a reply exactly as the exchange's consumer will."""
    program = env.registry.for_events_topic(record.topic)
    headers = tuple((k, bytes(v)) for k, v in (record.headers or ()))
    message = InboundMessage(record.topic, record.key, record.value, headers, record.partition,
                             record.offset)
    return program.interpret(message, datetime.now(UTC))


def at_least(n: int) -> Callable[[list[ConsumerRecord[bytes, bytes]]], bool]:
    return lambda records: len(records) >= n
