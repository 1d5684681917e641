"""Real processes for exchange tests: ``python -m streams.partner_worker`` and
``python -m adapters.simulator`` on isolated topics, killed and restarted for real."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from adapters.topics import PartnerTopics, ensure_topics
from tests.integration.exchange.support import CONFIG, fresh_keys_env
from tests.integration.streams.support import ROOT, StreamEnv, new_stream_env


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
    asyncio.run(ensure_topics(bootstrap, names, stream.partitions))
    return env


class Process:
    """A subprocess in its own session, its output appended to a log file."""

    def __init__(self, env: ExchangeEnv, args: list[str], log_path: Path) -> None:
        self._env = env
        self._args = args
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self._log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", *self._args], cwd=ROOT, env=self._env.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown hooks, no final offset commit."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def log_tail(self, lines: int = 60) -> str:
        text = self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def partner_worker(env: ExchangeEnv, log_path: Path) -> Process:
    return Process(env, ["streams.partner_worker"], log_path)


def simulator(env: ExchangeEnv, log_path: Path, *args: str) -> Process:
    return Process(
        env, ["adapters.simulator", "--topic-prefix", env.prefix, "--latency-ms", "0", *args],
        log_path,
    )
