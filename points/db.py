"""Database plumbing shared by every table module: one MetaData, one engine factory.

The naming convention gives every constraint a stable name so that Alembic migrations can
refer to (and drop) them on both SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    TextClause,
    bindparam,
    create_engine,
    event,
    text,
)

from points import jsonfast

__all__ = ["NAMING_CONVENTION", "insert_ignore", "make_engine", "metadata"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (API, CLI) run beside the writer; a busy timeout instead of instant
    # "database is locked" errors; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5) -> Engine:
    """Create an engine for ``url``; SQLite files get their parent folder and pragmas."""
    if url.startswith("sqlite"):
        from pathlib import Path

        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, json_serializer=jsonfast.dumps, json_deserializer=jsonfast.loads
        )
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        pool_pre_ping=True,
        json_serializer=jsonfast.dumps,
        json_deserializer=jsonfast.loads,
    )
    if url.startswith("postgresql+psycopg"):
        event.listen(engine, "connect", _psycopg_orjson)
    return engine


def _psycopg_orjson(dbapi_connection: Any, _record: Any) -> None:
    # psycopg decodes json columns itself (SQLAlchemy's deserializer is not used for them).
    from psycopg.types.json import set_json_loads

    set_json_loads(jsonfast.loads, dbapi_connection)


def insert_ignore(
    conn: Connection, table: Table, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> int:
    """Insert one row (a mapping) or several (every one with the keys of the first), skipping
    those whose primary or unique key exists; the rows inserted (for one row: 1 or 0)."""
    if isinstance(rows, Mapping):
        return int(conn.execute(_insert_ignore_statement(table, tuple(rows)), dict(rows)).rowcount)
    if not rows:
        return 0
    result = conn.execute(_insert_ignore_statement(table, tuple(rows[0])), list(rows))
    return int(result.rowcount)


@functools.lru_cache(maxsize=256)
def _insert_ignore_statement(table: Table, keys: tuple[str, ...]) -> TextClause:
    """``INSERT ... ON CONFLICT DO NOTHING`` as text with typed parameters, the same SQL on
    PostgreSQL and SQLite (3.24+). The dialects' ``insert().on_conflict_do_nothing()`` has no
    cache key in SQLAlchemy 2.0 (``inherit_cache = False``): it was compiled again on every
    call, about a third of a millisecond of CPU each (measured on the API's swap requests);
    this one is compiled once per table and column set."""
    columns = ", ".join(f'"{k}"' for k in keys)
    values = ", ".join(f":{k}" for k in keys)
    return text(
        f'INSERT INTO "{table.name}" ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING'
    ).bindparams(*(bindparam(k, type_=table.c[k].type) for k in keys))
