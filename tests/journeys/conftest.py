"""Fixtures for journeys: one isolated :class:`Journey` per test on the local stack.

The stack (``make stack-up``, or ``make test`` which starts it) exports the variables read
here; without them a journey fails with the command that starts the stack.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.journeys.harness import Journey, create_database, drop_database

STACK_HINT = "start the local stack first: `make stack-up` (or run `make test`, which does it)"


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; {STACK_HINT}", pytrace=False)
    return value


@pytest.fixture
def twin(journey: Journey, tmp_path: Path) -> Iterator[Journey]:
    """An undisturbed reference world on the same topics as ``journey``, with a database and
    consumer groups of its own (migrated, stopped and dropped like ``journey``'s)."""
    stack_pg_url = _require("POINTS_STACK_PG_URL")
    name = f"journey_{journey.suffix}_twin"
    log_dir = tmp_path / "twin"
    (log_dir / "data").mkdir(parents=True)
    other = journey.twin(create_database(stack_pg_url, name), log_dir)
    other.migrate()
    try:
        yield other
    finally:
        other.stop_all()
        print(other.logs())
        drop_database(stack_pg_url, name)


@pytest.fixture
def journey(tmp_path: Path) -> Iterator[Journey]:
    """A fresh database (migrated with ``points-ledger migrate``), fresh topic names and
    groups; every process the test started is stopped afterwards, and their logs are printed
    (pytest shows them when the test fails)."""
    bootstrap = _require("POINTS_KAFKA__BOOTSTRAP_SERVERS")
    stack_pg_url = _require("POINTS_STACK_PG_URL")
    probe = Journey(bootstrap=bootstrap, database_url="", log_dir=tmp_path)
    name = f"journey_{probe.suffix}"
    probe.database_url = create_database(stack_pg_url, name)
    (tmp_path / "data").mkdir()
    probe.migrate()
    try:
        yield probe
    finally:
        probe.stop_all()
        print(probe.logs())
        drop_database(stack_pg_url, name)
