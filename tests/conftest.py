"""Fixtures shared by every test: databases (SQLite and the stack's real PostgreSQL).

Integration fixtures never fall back to a fake: without the local stack they fail with the
command that starts it. ``make test`` starts the stack and exports the variables read here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from points.db import make_engine
from points.migrate import upgrade

STACK_HINT = "start the local stack first: `make stack-up` (or run `make test`, which does it)"


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; {STACK_HINT}", pytrace=False)
    return value


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the stack's PostgreSQL test database (POINTS_TEST_DATABASE_URL)."""
    return require_env("POINTS_TEST_DATABASE_URL")


def reset_pg_schema(url: str) -> None:
    """Drop everything in the test database so each test starts from an empty schema."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture
def fresh_pg_url(pg_url: str) -> str:
    reset_pg_schema(pg_url)
    return pg_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database migrated to head: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
        reset_pg_schema(url)
    upgrade(url)
    return url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the broker the tests run against, as the broker itself reports it."""
    bootstrap = os.environ.get("POINTS_KAFKA__BOOTSTRAP_SERVERS")
    if not bootstrap:
        return ["kafka: POINTS_KAFKA__BOOTSTRAP_SERVERS not set (integration tests will fail)"]
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from devstack.kafka import logged_version
    from devstack.paths import load_config

    try:
        cluster = (
            AdminClient({"bootstrap.servers": bootstrap})
            .describe_cluster(request_timeout=5)
            .result(timeout=10)
        )
    except (KafkaException, TimeoutError) as exc:
        return [f"kafka: {bootstrap} did not answer describe_cluster: {exc}"]
    line = f"kafka: {bootstrap} answered describe_cluster, {len(cluster.nodes)} broker(s)"
    try:
        release = logged_version(load_config().kafka_log.read_text(errors="replace"))
    except OSError:
        release = None
    if release:
        line += f"; the broker's startup log says Kafka version {release}"
    return [line]
