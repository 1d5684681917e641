"""Real processes for exchange tests: ``python -m streams.partner_worker`` and
``python -m adapters.simulator`` on isolated topics, killed and restarted for real."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from adapters.topics import PartnerTopics, ensure_topics
from points.settings import KafkaSettings
from tests.integration.exchange.support import CONFIG, fresh_keys_env
from tests.integration.processes import ManagedProcess
from tests.integration.streams.support import StreamEnv, new_stream_env


@dataclass
class ExchangeEnv:
    stream: StreamEnv
    prefix: str
    keys_env: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        env = self.stream.env
        env.update(self.keys_env)
        env["POINTS_PARTNER_TOPIC_PREFIX"] = self.prefix
        env["POINTS_REFERRAL_SECRET"] = "72" * 32
        return env

    @property
    def topics(self) -> PartnerTopics:
        return PartnerTopics(prefix=self.prefix)


def new_exchange_env(bootstrap: str, database_url: str) -> ExchangeEnv:
    stream = new_stream_env(bootstrap, database_url)
    env = ExchangeEnv(stream, f"t{stream.suffix}.", fresh_keys_env())
    names = [t for p in CONFIG.partners for t in (env.topics.events(p), env.topics.requests(p))]
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    asyncio.run(ensure_topics(kafka, names, stream.partitions))
    return env


class Process(ManagedProcess):
    """A subprocess of an exchange test, with the test's keys, topics and database."""

    def __init__(self, env: ExchangeEnv, args: list[str], log_path: Path) -> None:
        super().__init__(args, env.env, log_path)


def partner_worker(env: ExchangeEnv, log_path: Path) -> Process:
    return Process(env, ["streams.partner_worker"], log_path)


def simulator(env: ExchangeEnv, log_path: Path, *args: str) -> Process:
    return Process(
        env,
        ["adapters.simulator", "--topic-prefix", env.prefix, "--latency-ms", "0", *args],
        log_path,
    )
