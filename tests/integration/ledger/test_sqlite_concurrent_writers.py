"""The embedded SQLite ledger shared by several processes (the demo's worker, partner worker
and API): concurrent batches never pick the same entry ids and keep every invariant."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from points.db import make_engine
from points.ledger import Earn, apply_batch, verify
from points.migrate import upgrade

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _writer(url: str, name: str, batches: int) -> None:
    engine = make_engine(url)
    for b in range(batches):
        ops = [
            Earn(f"{name}-{b}-{i}", f"{name}-cust-{b}-{i}", 10, NOW + timedelta(days=365))
            for i in range(25)
        ]
        with engine.begin() as conn:
            apply_batch(conn, ops, now=NOW)
    engine.dispose()


def test_two_processes_writing_batches_at_once_never_collide(tmp_path: Path) -> None:
    """Three OS processes write 40 batches each into one SQLite file at the same time: all
    3,000 entries land, none is lost to an id collision, and verify() is clean."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    upgrade(url)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(url, name, 40)) for name in ("a", "b", "c")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            report = verify(conn)
    finally:
        engine.dispose()
    assert report.ok, report.violations
    assert report.entries == 3 * 40 * 25
