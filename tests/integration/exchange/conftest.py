from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from points.db import make_engine
from points.migrate import upgrade
from tests.integration.exchange.support import Clock, Exchange, fresh_keys_env

pytestmark = pytest.mark.integration


@pytest.fixture
def exchange(fresh_pg_url: str) -> Iterator[Exchange]:
    """A migrated, empty PostgreSQL ledger; the exchange service on it with a fixed clock;
    the simulated partners (no rejections) answering in process with fresh keys."""
    upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    yield Exchange(engine, Clock(), f"t{uuid.uuid4().hex[:8]}.", fresh_keys_env())
    engine.dispose()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The stack's real broker; without it the test fails with the command that starts it."""
    from tests.conftest import require_env

    return require_env("POINTS_KAFKA__BOOTSTRAP_SERVERS")
