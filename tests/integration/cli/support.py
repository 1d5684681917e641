"""Helpers for the ops CLI tests: invoke ``points-ledger`` in-process, seed the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from points.cli import app
from points.db import make_engine
from points.ledger import Operation, Rejected, apply_batch

# The CLI reads the real clock (balances "expiring within 30 days", as-of never in the
# future), so the seeded ledger is placed around the real now.
NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def cli(url: str, *args: str, env: Mapping[str, str] | None = None) -> Result:
    """Run ``points-ledger --database-url URL ARGS...`` and return the result."""
    return CliRunner().invoke(app, ["--database-url", url, *args], env=env)


def cli_json(url: str, *args: str, exit_code: int = 0) -> Any:
    """Run a command with ``--json``, check its exit code, return the parsed stdout."""
    result = CliRunner().invoke(app, ["--database-url", url, "--json", *args])
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    return json.loads(result.stdout)


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def seed(url: str, *operations: Operation, now: datetime = NOW) -> None:
    """Apply operations directly through the ledger API; every one must commit."""
    with engine_for(url) as engine, engine.begin() as conn:
        results = apply_batch(conn, list(operations), now=now)
    refused = [r for r in results if isinstance(r, Rejected)]
    assert not refused, refused
