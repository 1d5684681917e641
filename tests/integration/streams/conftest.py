from __future__ import annotations

import os

import pytest

from points.migrate import upgrade
from tests.conftest import STACK_HINT
from tests.integration.streams.support import StreamEnv, new_stream_env


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    value = os.environ.get("POINTS_KAFKA__BOOTSTRAP_SERVERS")
    if not value:
        pytest.fail(f"POINTS_KAFKA__BOOTSTRAP_SERVERS is not set; {STACK_HINT}", pytrace=False)
    return value


@pytest.fixture
def stream_env(kafka_bootstrap: str, fresh_pg_url: str) -> StreamEnv:
    """Fresh topics, a fresh consumer group and a freshly migrated PostgreSQL ledger."""
    upgrade(fresh_pg_url)
    return new_stream_env(kafka_bootstrap, fresh_pg_url)
