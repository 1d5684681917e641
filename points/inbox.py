"""The inbox: one row per consumed event id, the consumer's tracking record.

``inbound_events`` gets a row for every accepted event, written in the same transaction as
whatever the event caused, so a replayed message finds its id already there and changes
nothing (the ``eventsourcing`` library's tracking records; points/consumed_batch.py runs it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    func,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from points import jsonfast
from points.db import metadata
from points.pgarrays import text_array_literal
from points.pgcopy import copy_rows

__all__ = ["AcceptedEvent", "inbound_events", "record_inbox"]

inbound_events = Table(
    "inbound_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("topic", String(249), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """A valid consumed event. ``raw`` is the message value exactly as it arrived (valid JSON,
    checked against its contract); the inbox stores it as the event's payload."""

    event_id: str
    topic: str
    event_type: str
    customer_id: str
    partition: int
    offset: int
    raw: bytes

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = jsonfast.loads(self.raw)
        return value


def _insert_ignoring_duplicates(conn: Connection, table: Table) -> Any:
    """An INSERT that skips rows whose unique key exists: the idempotency is in the database."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"unsupported dialect {conn.dialect.name}")  # pragma: no cover


# One statement, one parameter: the batch as a JSON array that PostgreSQL unpacks with
# json_to_recordset. Building it is one orjson call; a multi-row VALUES list or
# per-column arrays cost more to build and to parse than the insert itself (profiled).
_INBOX_INSERT_PG = text(
    """
    INSERT INTO inbound_events
        (event_id, topic, event_type, customer_id, kafka_partition, kafka_offset, payload)
    SELECT r.event_id, r.topic, r.event_type, r.customer_id, r.kafka_partition,
           r.kafka_offset, r.payload
    FROM json_to_recordset(CAST(:rows AS json)) AS r(
        event_id varchar, topic varchar, event_type varchar, customer_id varchar,
        kafka_partition integer, kafka_offset bigint, payload json)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
)


_INBOX_COLUMNS = (
    "event_id",
    "topic",
    "event_type",
    "customer_id",
    "kafka_partition",
    "kafka_offset",
    "payload",
)


def _copy_inbox_pg(conn: Connection, events: Sequence[AcceptedEvent]) -> set[str]:
    """The ids not stored yet, found with one index probe each, then loaded with COPY (about
    half the database CPU of the INSERT; points/pgcopy.py). A concurrent writer that stores one
    of them first makes the COPY fail and the caller's transaction roll back."""
    stored = set(
        conn.execute(
            text("SELECT event_id FROM inbound_events WHERE event_id = ANY(CAST(:ids AS text[]))"),
            {"ids": text_array_literal([e.event_id for e in events])},
        ).scalars()
    )
    new = [e for e in events if e.event_id not in stored]
    copy_rows(
        conn,
        inbound_events.name,
        _INBOX_COLUMNS,
        (
            (
                e.event_id,
                e.topic,
                e.event_type,
                e.customer_id,
                e.partition,
                e.offset,
                e.raw.decode(),
            )
            for e in new
        ),
    )
    return {e.event_id for e in new}


def _inbox_row(event: AcceptedEvent, payload: Any) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "topic": event.topic,
        "event_type": event.event_type,
        "customer_id": event.customer_id,
        "kafka_partition": event.partition,
        "kafka_offset": event.offset,
        "payload": payload,
    }


def _insert_inbox_pg(conn: Connection, events: Sequence[AcceptedEvent]) -> set[str]:
    # The payload embedded as it arrived: no decode and re-encode of every event.
    payload = jsonfast.dumps([_inbox_row(e, orjson.Fragment(e.raw)) for e in events])
    return set(conn.execute(_INBOX_INSERT_PG, {"rows": payload}).scalars().all())


def _insert_inbox_sqlite(conn: Connection, events: Sequence[AcceptedEvent]) -> set[str]:
    rows = [_inbox_row(e, e.payload) for e in events]
    stmt = _insert_ignoring_duplicates(conn, inbound_events).returning(inbound_events.c.event_id)
    # executemany with RETURNING: SQLAlchemy batches it as multi-row VALUES.
    return set(conn.execute(stmt, rows).scalars().all())


def record_inbox(
    conn: Connection, accepted: Sequence[AcceptedEvent], *, bulk: bool = False
) -> set[str]:
    """Store the accepted events' ids inside the caller's transaction; return the ids that
    were new.

    Ids already in the inbox (a replay, or a duplicate sent by the producer) are left out of
    the result, so the caller applies effects only for the new ones.

    ``bulk`` (PostgreSQL): look the ids up, then COPY the new ones — cheaper for big batches,
    but a concurrent writer storing one of the same ids makes this raise (a unique violation)
    instead of skipping it: only for callers that retry their whole transaction.
    """
    if not accepted:
        return set()
    # A producer may send one id twice within a batch: keep the first occurrence.
    first: dict[str, AcceptedEvent] = {}
    for event in accepted:
        first.setdefault(event.event_id, event)
    events = list(first.values())
    if conn.dialect.name == "postgresql":
        return _copy_inbox_pg(conn, events) if bulk else _insert_inbox_pg(conn, events)
    return _insert_inbox_sqlite(conn, events)
