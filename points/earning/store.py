"""Load and save the earning pipeline's per-customer rows, set-based, inside the caller's txn.

PostgreSQL gets one statement per table per batch: new earning records by ``COPY``
(points/pgcopy.py), rule state as array literals (points/pgarrays.py), the other upserts as one
JSON parameter unpacked by ``json_to_recordset``; SQLite gets executemany, which is fast
in-process. Rule state is read ``FOR UPDATE`` on PostgreSQL and written only over the version it
was read at (points/earning/working_set.py), so two workers briefly holding batches of one
customer during a rebalance cannot overwrite each other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from points import jsonfast
from points.earning.tables import (
    customer_profiles,
    customer_rule_state,
    earning_records,
    parked_events,
)
from points.pgarrays import int_array_literal, text_array_literal
from points.pgcopy import copy_rows

__all__ = [
    "delete_parked",
    "load_parked",
    "load_profiles",
    "load_records",
    "load_states_versioned",
    "park",
    "save_profiles",
    "save_records",
    "save_states_versioned",
]


def _chunks(values: list[str], size: int = 5000) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _load_json_by_key(
    conn: Connection, table: Table, key: str, column: str, keys: Iterable[str], *, lock: bool
) -> dict[str, Any]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    if conn.dialect.name == "postgresql":
        # One array parameter instead of an IN list of thousands of bind parameters, which
        # costs more to build than the lookup itself. Sorted + FOR UPDATE: locks in key order.
        lock_sql = " FOR UPDATE" if lock else ""
        statement = text(
            f"SELECT {key}, {column} FROM {table.name} "
            f"WHERE {key} = ANY(CAST(:keys AS varchar[])) ORDER BY {key}{lock_sql}"
        )
        return dict(conn.execute(statement, {"keys": text_array_literal(wanted)}).tuples().all())
    out: dict[str, Any] = {}
    key_col, value_col = table.c[key], table.c[column]
    for chunk in _chunks(wanted):
        query = select(key_col, value_col).where(key_col.in_(chunk))
        out.update(conn.execute(query).tuples().all())
    return out


def load_states_versioned(
    conn: Connection, customer_ids: Iterable[str]
) -> dict[str, tuple[dict[str, Any], int]]:
    """Each customer's rule state and its version (``events_applied``), locked FOR UPDATE on
    PostgreSQL (during a rebalance two workers may briefly hold batches of one customer: the
    lock makes the second read the first's result)."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return {}
    if conn.dialect.name == "postgresql":
        statement = text(
            "SELECT customer_id, state, events_applied FROM customer_rule_state "
            "WHERE customer_id = ANY(CAST(:keys AS varchar[])) ORDER BY customer_id FOR UPDATE"
        )
        rows = conn.execute(statement, {"keys": text_array_literal(wanted)}).tuples()
        return {c: (state, version) for c, state, version in rows}
    t = customer_rule_state
    out: dict[str, tuple[dict[str, Any], int]] = {}
    for chunk in _chunks(wanted):
        query = select(t.c.customer_id, t.c.state, t.c.events_applied).where(
            t.c.customer_id.in_(chunk)
        )
        out.update({c: (state, version) for c, state, version in conn.execute(query).tuples()})
    return out


def load_profiles(conn: Connection, customer_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    return _load_json_by_key(
        conn, customer_profiles, "customer_id", "profile", customer_ids, lock=False
    )


def load_records(conn: Connection, event_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    return _load_json_by_key(conn, earning_records, "event_id", "record", event_ids, lock=True)


def load_parked(conn: Connection, waiting_for: Iterable[str]) -> list[dict[str, Any]]:
    wanted = sorted(set(waiting_for))
    if not wanted:
        return []
    columns = (parked_events.c.event_id, parked_events.c.waiting_for, parked_events.c.payload)
    if conn.dialect.name == "postgresql":
        statement = text(
            "SELECT event_id, waiting_for, payload FROM parked_events "
            "WHERE waiting_for = ANY(CAST(:keys AS varchar[])) ORDER BY event_id"
        )
        keys = text_array_literal(wanted)
        return [dict(r._mapping) for r in conn.execute(statement, {"keys": keys})]
    rows: list[dict[str, Any]] = []
    for chunk in _chunks(wanted):
        query = select(*columns).where(parked_events.c.waiting_for.in_(chunk))
        rows.extend(dict(r._mapping) for r in conn.execute(query))
    return sorted(rows, key=lambda r: str(r["event_id"]))


def _upsert(
    conn: Connection,
    table: Table,
    key: str,
    rows: list[dict[str, Any]],
    json_columns: tuple[str, ...],
    plain_columns: tuple[str, ...] = (),
) -> None:
    """Insert or replace rows by ``key``; ``updated_at`` is set to now when present."""
    if not rows:
        return
    columns = (key, *plain_columns, *json_columns)
    has_updated = "updated_at" in table.c
    if conn.dialect.name == "postgresql":
        types = {c: "json" if c in json_columns else _pg_type(table, c) for c in columns}
        column_list = ", ".join(columns)
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
        if has_updated:
            sets += ", updated_at = now()"
        record_def = ", ".join(f"{c} {types[c]}" for c in columns)
        statement = text(
            f"INSERT INTO {table.name} ({column_list}) "
            f"SELECT {column_list} FROM json_to_recordset(CAST(:rows AS json)) AS r({record_def}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {sets}"
        )
        conn.execute(statement, {"rows": jsonfast.dumps(rows)})
        return
    stmt = sqlite.insert(table)
    update = {c: stmt.excluded[c] for c in columns if c != key}
    conn.execute(stmt.on_conflict_do_update(index_elements=[key], set_=update), rows)


def _pg_type(table: Table, column: str) -> str:
    dialect: Any = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(table.c[column].type.compile(dialect=dialect))


# Three array literals (points/pgarrays.py) rather than one JSON document: PostgreSQL parses
# them with less CPU (measured), and building them costs Python little.
_SAVE_VERSIONED_PG = text(
    """
    INSERT INTO customer_rule_state (customer_id, state, events_applied)
    SELECT * FROM unnest(CAST(:customers AS text[]), CAST(:states AS json[]),
                         CAST(:versions AS integer[]))
    ON CONFLICT (customer_id) DO UPDATE
        SET state = EXCLUDED.state, events_applied = EXCLUDED.events_applied, updated_at = now()
        WHERE customer_rule_state.events_applied = EXCLUDED.events_applied - 1
    """
)


def save_states_versioned(
    conn: Connection, states: Mapping[str, tuple[dict[str, Any], int]]
) -> int:
    """Write each ``customer -> (state, new_version)`` only where the stored version is
    ``new_version - 1`` (version 1 inserts a customer's first row); return how many rows were
    written. Fewer than ``len(states)`` means some row moved on: the caller must roll back."""
    if not states:
        return 0
    ordered = sorted(states.items())  # one lock order for every writer
    if conn.dialect.name == "postgresql":
        dumps = jsonfast.dumps
        result = conn.execute(
            _SAVE_VERSIONED_PG,
            {
                "customers": text_array_literal([c for c, _ in ordered]),
                "states": text_array_literal([dumps(state) for _, (state, _) in ordered]),
                "versions": int_array_literal([version for _, (_, version) in ordered]),
            },
        )
        return int(result.rowcount)
    rows = [
        {"customer_id": c, "state": state, "events_applied": version}
        for c, (state, version) in ordered
    ]
    t = customer_rule_state
    stmt = sqlite.insert(t)
    upsert = stmt.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={
            "state": stmt.excluded.state,
            "events_applied": stmt.excluded.events_applied,
            "updated_at": func.now(),
        },
        where=t.c.events_applied == stmt.excluded.events_applied - 1,
    )
    # One row at a time: sqlite3's executemany reports an upsert whose WHERE failed
    # inconsistently across versions, and this counts exactly.
    return sum(int(conn.execute(upsert, row).rowcount) for row in rows)


def save_profiles(
    conn: Connection, profiles: Mapping[str, tuple[dict[str, Any], str | None]]
) -> None:
    rows = [
        {"customer_id": k, "profile": p, "referral_code": code}
        for k, (p, code) in sorted(profiles.items())
    ]
    _upsert(conn, customer_profiles, "customer_id", rows, ("profile",), ("referral_code",))


def save_records(
    conn: Connection,
    records: Mapping[str, tuple[str, dict[str, Any]]],
    new_ids: Collection[str] = (),
) -> None:
    """Insert or replace earning records. ``new_ids``: events whose records cannot exist yet
    (first seen in this transaction); on PostgreSQL they are loaded with COPY (points/pgcopy.py),
    which fails, rolling the transaction back, if a concurrent writer stored one first."""
    if conn.dialect.name == "postgresql" and new_ids:
        dumps = jsonfast.dumps
        copy_rows(
            conn,
            earning_records.name,
            ("event_id", "customer_id", "record"),
            (
                (k, customer, dumps(record))
                for k, (customer, record) in records.items()
                if k in new_ids
            ),
        )
        records = {k: v for k, v in records.items() if k not in new_ids}
    rows = [
        {"event_id": k, "customer_id": customer, "record": record}
        for k, (customer, record) in sorted(records.items())
    ]
    _upsert(conn, earning_records, "event_id", rows, ("record",), ("customer_id",))


def park(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(parked_events).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(parked_events).on_conflict_do_nothing()
    conn.execute(stmt, rows)


def delete_parked(conn: Connection, event_ids: Iterable[str]) -> None:
    ids = sorted(set(event_ids))
    for chunk in _chunks(ids):
        conn.execute(delete(parked_events).where(parked_events.c.event_id.in_(chunk)))
