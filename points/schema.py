"""Where the schema's table modules are listed, so Alembic and tests see every table."""

from __future__ import annotations

import importlib

__all__ = ["TABLE_MODULES", "import_all_tables"]

# Each module defines tables on points.db.metadata. Add new table modules here.
TABLE_MODULES = (
    "points.inbox",
    "points.dead_letters",
    "points.outbox",
    "points.ledger.tables",
    "points.earning.tables",
    "points.operations_tables",
    "points.exchange.tables",
    "points.api.tables",
    "points.refusals",
    "points.gifts.tables",
    "points.nudges.tables",
)


def import_all_tables() -> None:
    for name in TABLE_MODULES:
        importlib.import_module(name)
