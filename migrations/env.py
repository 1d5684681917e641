"""Alembic environment: the URL comes from points.settings, the metadata from the table modules.

Callers may pass a connection (tests, ``points.migrate``) through ``config.attributes``;
otherwise an engine is made from Settings.
"""

from __future__ import annotations

from alembic import context

from points.db import make_engine, metadata
from points.schema import import_all_tables
from points.settings import load_settings

import_all_tables()
target_metadata = metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds tables when a migration must.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.attributes.get("url") or load_settings().database_url
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():  # pragma: no cover - we never generate offline SQL
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
