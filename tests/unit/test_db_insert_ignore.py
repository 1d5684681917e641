"""points.db.insert_ignore: the one ON CONFLICT DO NOTHING insert every store uses."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select

from points.db import _insert_ignore_statement, insert_ignore

_metadata = MetaData()
_items = Table(
    "items",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), nullable=False),
)


def test_a_replayed_row_is_skipped_and_reported_as_not_inserted() -> None:
    """One row: 1 when inserted, 0 when its key exists (the first value stays); several rows:
    how many were new."""
    engine = create_engine("sqlite://")
    _metadata.create_all(engine)
    with engine.begin() as conn:
        assert insert_ignore(conn, _items, {"id": 1, "name": "first"}) == 1
        assert insert_ignore(conn, _items, {"id": 1, "name": "second"}) == 0
        assert insert_ignore(conn, _items, [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]) == 1
        assert insert_ignore(conn, _items, []) == 0
        rows = conn.execute(select(_items.c.id, _items.c.name).order_by(_items.c.id)).all()
    assert [tuple(r) for r in rows] == [(1, "first"), (2, "y")]


def test_the_statement_is_built_once_per_table_and_column_set() -> None:
    """The dialects' on_conflict_do_nothing() inserts have no SQLAlchemy cache key and were
    compiled on every call; this text statement is built once and reused."""
    first = _insert_ignore_statement(_items, ("id", "name"))
    assert _insert_ignore_statement(_items, ("id", "name")) is first
    assert _insert_ignore_statement(_items, ("id",)) is not first
