from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.conftest import require_env
from tests.integration.adapters.support import PartnerEnv, SimulatorProcess, new_partner_env

StartSimulator = Callable[[Sequence[str]], SimulatorProcess]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The stack's real broker; without it the test fails with the command that starts it."""
    return require_env("POINTS_KAFKA__BOOTSTRAP_SERVERS")


@pytest.fixture
def partner_env(kafka_bootstrap: str) -> PartnerEnv:
    """Fresh partner topics (random prefix, created with the settings' partition count), a
    fresh consumer group and fresh signing keys."""
    return new_partner_env(kafka_bootstrap)


@pytest.fixture
def start_simulator(partner_env: PartnerEnv, tmp_path: Path) -> Iterator[StartSimulator]:
    """Start simulator subprocesses (same env, one log file); all stopped at teardown."""
    started: list[SimulatorProcess] = []

    def start(args: Sequence[str]) -> SimulatorProcess:
        process = SimulatorProcess(partner_env, args, tmp_path / "simulator.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
