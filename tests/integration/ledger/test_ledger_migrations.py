"""Migration 0002 on both databases: up, down to base, up again; it matches the tables."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from points.db import make_engine, metadata
from points.ledger import tables
from points.migrate import downgrade, upgrade

LEDGER_TABLES = {t.name for t in (tables.accounts, tables.balances, tables.entries, tables.legs,
                                  tables.lots, tables.lot_moves, tables.holds,
                                  tables.hold_resolutions)}


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(migrated_url: str) -> None:
    """Head has every ledger table; base has none; head again rebuilds them all."""
    assert table_names(migrated_url) >= LEDGER_TABLES
    downgrade(migrated_url, "base")
    assert not LEDGER_TABLES & table_names(migrated_url)
    upgrade(migrated_url)
    assert table_names(migrated_url) >= LEDGER_TABLES


def test_migration_matches_the_table_definitions(migrated_url: str) -> None:
    """Alembic finds no difference between migration 0002 and points.ledger.tables."""
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata)
    finally:
        engine.dispose()

    def touches_ledger(diff: object) -> bool:
        text = repr(diff)
        return any(name in text for name in LEDGER_TABLES)

    ledger_diffs = [d for d in diffs if touches_ledger(d)]
    assert ledger_diffs == []
