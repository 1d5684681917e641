"""Intake: the record of every message the exchange consumed, and of every one it rejected.

``inbound_events`` is the consumer's inbox: one row per accepted event id, written in the same
transaction as whatever the event caused, so a replayed message finds its id already there and
changes nothing. ``dead_letters`` keeps each rejected message's reason and original bytes, keyed
by its Kafka position so a replay does not record it twice. ``outbox`` holds messages to publish
(ledger notifications, DLQ copies, partner requests); a relay sends them after the commit.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from points import jsonfast
from points.db import insert_ignore, metadata
from points.pgarrays import text_array_literal
from points.pgcopy import copy_rows

__all__ = [
    "BUNDLE_CONTENT_TYPE",
    "AcceptedEvent",
    "BundledMessage",
    "RejectedMessage",
    "bundle_row",
    "dead_letters",
    "inbound_events",
    "outbox",
    "outbox_table",
    "record_batch",
    "unbundle",
]

# BigInteger ids autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

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

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("topic", String(249), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("message_key", LargeBinary, nullable=True),
    Column("message_value", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("topic", "kafka_partition", "kafka_offset"),
)

outbox_table = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("topic", String(249), nullable=False),
    Column("message_key", LargeBinary, nullable=True),
    Column("message_value", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    # Unique per logical message so that a replayed batch cannot enqueue the same one twice.
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("relayed_at", DateTime(timezone=True), nullable=True, index=True),
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


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    topic: str
    partition: int
    offset: int
    reason_code: str
    reason: str
    key: bytes | None
    value: bytes | None


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


def _insert_inbox_pg(conn: Connection, events: Sequence[AcceptedEvent]) -> set[str]:
    rows = [
        {
            "event_id": e.event_id,
            "topic": e.topic,
            "event_type": e.event_type,
            "customer_id": e.customer_id,
            "kafka_partition": e.partition,
            "kafka_offset": e.offset,
            # Embedded as it arrived: no decode and re-encode of every event.
            "payload": orjson.Fragment(e.raw),
        }
        for e in events
    ]
    payload = jsonfast.dumps(rows)
    return set(conn.execute(_INBOX_INSERT_PG, {"rows": payload}).scalars().all())


def record_batch(
    conn: Connection,
    accepted: Sequence[AcceptedEvent],
    rejected: Sequence[RejectedMessage],
    *,
    dlq_topic: str,
    outbox: Sequence[dict[str, Any]] = (),
    bulk: bool = False,
) -> set[str]:
    """Record a consumed batch inside the caller's transaction; return the ids that were new.

    Ids already in the inbox (a replay, or a duplicate sent by the producer) are left out of
    the result, so the caller applies effects only for the new ones. ``outbox`` rows (topic,
    message_key, message_value, headers, dedupe_key) are queued, each at most once.

    ``bulk`` (PostgreSQL): look the ids up, then COPY the new ones — cheaper for big batches,
    but a concurrent writer storing one of the same ids makes this raise (a unique violation)
    instead of skipping it: only for callers that retry their whole transaction.
    """
    new_ids: set[str] = set()
    if accepted:
        # A producer may send one id twice within a batch: keep the first occurrence.
        first: dict[str, AcceptedEvent] = {}
        for event in accepted:
            first.setdefault(event.event_id, event)
        events = list(first.values())
        if conn.dialect.name == "postgresql":
            new_ids = _copy_inbox_pg(conn, events) if bulk else _insert_inbox_pg(conn, events)
        else:
            rows = [
                {
                    "event_id": e.event_id,
                    "topic": e.topic,
                    "event_type": e.event_type,
                    "customer_id": e.customer_id,
                    "kafka_partition": e.partition,
                    "kafka_offset": e.offset,
                    "payload": e.payload,
                }
                for e in events
            ]
            stmt = _insert_ignoring_duplicates(conn, inbound_events).returning(
                inbound_events.c.event_id
            )
            # executemany with RETURNING: SQLAlchemy batches it as multi-row VALUES.
            new_ids = set(conn.execute(stmt, rows).scalars().all())
    if rejected:
        now = datetime.now(UTC)
        dlq_rows = [
            {
                "topic": r.topic,
                "kafka_partition": r.partition,
                "kafka_offset": r.offset,
                "reason_code": r.reason_code,
                "reason": r.reason,
                "message_key": r.key,
                "message_value": r.value,
            }
            for r in rejected
        ]
        insert_ignore(conn, dead_letters, dlq_rows)
        outbox_rows = [
            {
                "topic": dlq_topic,
                "message_key": r.key,
                "message_value": r.value if r.value is not None else b"",
                "headers": {
                    "dlq.reason_code": r.reason_code,
                    "dlq.reason": r.reason[:2000],
                    "dlq.source": f"{r.topic}/{r.partition}/{r.offset}",
                    "dlq.rejected_at": now.isoformat(),
                },
                "dedupe_key": f"dlq:{r.topic}:{r.partition}:{r.offset}",
            }
            for r in rejected
        ]
        insert_ignore(conn, outbox_table, outbox_rows)
    if outbox:
        _insert_outbox(conn, outbox)
    return new_ids


_OUTBOX_INSERT_PG = text(
    """
    INSERT INTO outbox (topic, message_key, message_value, headers, dedupe_key)
    SELECT r.topic, decode(r.message_key, 'base64'), decode(r.message_value, 'base64'),
           r.headers, r.dedupe_key
    FROM json_to_recordset(CAST(:rows AS json)) AS r(
        topic varchar, message_key text, message_value text, headers json, dedupe_key varchar)
    ON CONFLICT (dedupe_key) DO NOTHING
    """
)


def _insert_outbox(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Queue messages, each at most once (by dedupe_key), in the caller's transaction."""
    if conn.dialect.name != "postgresql" or len(rows) <= 4:
        # A few rows (a bundle, a swap's messages) go as they are: bytes travel as binary
        # parameters, where base64 inside JSON would cost more than the insert.
        insert_ignore(conn, outbox_table, list(rows))
        return
    # Bytes travel base64-encoded inside the one JSON parameter (see _INBOX_INSERT_PG).
    payload = [
        {
            "topic": r["topic"],
            "message_key": None
            if r["message_key"] is None
            else b64encode(r["message_key"]).decode(),
            "message_value": b64encode(r["message_value"]).decode(),
            "headers": r["headers"],
            "dedupe_key": r["dedupe_key"],
        }
        for r in rows
    ]
    conn.execute(_OUTBOX_INSERT_PG, {"rows": jsonfast.dumps(payload)})


# -- bundles: many messages of one topic in one outbox row ------------------------------------
#
# The earning worker announces every entry it commits on points.ledger: one outbox row per
# entry was a sixth of the database work of a batch (an insert plus its index entries, then
# the relay's read and mark). A bundle row carries all of a batch's announcements; the relay
# expands it back into the same messages (key, value, per-message dedupe_key) in the same order.
# Bundled values are JSON and keys UTF-8 text, which is what points.ledger carries.

BUNDLE_CONTENT_TYPE = "application/vnd.points.outbox-bundle+json"


class BundledMessage(NamedTuple):
    key: str
    #: the message value: a JSON-ready object when bundling, its JSON bytes when unbundled
    value: Any
    dedupe_key: str


def bundle_row(topic: str, messages: Sequence[tuple[str, Any, str]]) -> dict[str, Any]:
    """One outbox row holding ``messages``: (key, JSON-ready value, dedupe key) each, plain
    tuples or :class:`BundledMessage`; the values are encoded here in one call. The row's own
    dedupe key is the first message's (each message's is unique, so a bundle is queued at most
    once too)."""
    if not messages:
        raise ValueError("an outbox bundle needs at least one message")
    value = jsonfast.dumps_bytes(
        [{"key": key, "value": body, "dedupe_key": dedupe} for key, body, dedupe in messages]
    )
    return {
        "topic": topic,
        "message_key": None,
        "message_value": value,
        "headers": {"content-type": BUNDLE_CONTENT_TYPE},
        "dedupe_key": f"bundle:{messages[0][2]}",
    }


def unbundle(value: bytes) -> list[BundledMessage]:
    """The messages of a bundle row's value, in the order they were bundled, each value as
    its own JSON document (bytes)."""
    return [
        BundledMessage(str(m["key"]), orjson.dumps(m["value"]), str(m["dedupe_key"]))
        for m in orjson.loads(value)
    ]


outbox = outbox_table  # the table's public name; ``record_batch`` takes rows by that name
