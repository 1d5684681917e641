"""Helpers for the ledger's database tests (run on SQLite and PostgreSQL via ``engine``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from points.ledger import (
    CustomerBalance,
    Operation,
    OperationResult,
    apply_batch,
    customer_balance,
    verify,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=365)


def run(engine: Engine, *ops: Operation, now: datetime = NOW) -> list[OperationResult]:
    """Apply ops in one transaction, then prove the whole ledger still verifies."""
    with engine.begin() as conn:
        results = apply_batch(conn, list(ops), now=now)
    assert_clean(engine)
    return results


def run_many(engine: Engine, ops: Sequence[Operation], *,
             now: datetime = NOW) -> list[OperationResult]:
    return run(engine, *ops, now=now)


def assert_clean(engine: Engine) -> None:
    with engine.connect() as conn:
        report = verify(conn)
    assert report.ok, report.violations


def balance(engine: Engine, customer: str, program: str = "bank") -> CustomerBalance:
    with engine.connect() as conn:
        return customer_balance(conn, customer, program=program, now=NOW)
