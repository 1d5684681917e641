"""SQL for the batch path: load what a batch reads, write what it decided, set-based.

One interface (:class:`Store`, with the SQL both databases share) and one implementation per
database: :class:`PgStore` (array parameters, ``unnest``/``ANY``: one statement per table per
batch) and :class:`SqliteStore` (``executemany`` and ``json_each`` lists: one writer,
in-process, no round trips). :func:`open_store` picks one from the connection's dialect. Both
are driven through the caller's ``Connection`` and never commit.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection

from points.ledger.store.base import KeyTaken, Store, StoredEntry
from points.ledger.store.pg import HOT_SHARDS, PgStore
from points.ledger.store.sqlite import SqliteStore

__all__ = ["HOT_SHARDS", "KeyTaken", "PgStore", "SqliteStore", "Store", "StoredEntry",
           "open_store"]

_STORE_BY_DIALECT: Final[dict[str, type[Store]]] = {
    "postgresql": PgStore,
    "sqlite": SqliteStore,
}


def open_store(conn: Connection) -> Store:
    """The store for ``conn``'s database, driven through ``conn``."""
    store = _STORE_BY_DIALECT.get(conn.dialect.name)
    if store is None:  # pragma: no cover
        raise NotImplementedError(f"unsupported database {conn.dialect.name}")
    return store(conn)
