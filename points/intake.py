"""Intake: the record of every message the exchange consumed, and of every one it rejected.

``inbound_events`` is the consumer's inbox: one row per accepted event id, written in the same
transaction as whatever the event caused, so a replayed message finds its id already there and
changes nothing. ``dead_letters`` keeps each rejected message's reason and original bytes, keyed
by its Kafka position so a replay does not record it twice. ``outbox`` holds messages to publish
(ledger notifications, DLQ copies, partner requests); a relay sends them after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from points.db import metadata

__all__ = [
    "AcceptedEvent",
    "RejectedMessage",
    "dead_letters",
    "inbound_events",
    "outbox",
    "record_batch",
]

# BigInteger ids autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

inbound_events = Table(
    "inbound_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("topic", String(249), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("customer_id", String(64), nullable=False, index=True),
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

outbox = Table(
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
    event_id: str
    topic: str
    event_type: str
    customer_id: str
    partition: int
    offset: int
    payload: dict[str, Any]


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


def record_batch(
    conn: Connection,
    accepted: Sequence[AcceptedEvent],
    rejected: Sequence[RejectedMessage],
    *,
    dlq_topic: str,
) -> set[str]:
    """Record a consumed batch inside the caller's transaction; return the ids that were new.

    Ids already in the inbox (a replay, or a duplicate sent by the producer) are left out of
    the result, so the caller applies effects only for the new ones.
    """
    new_ids: set[str] = set()
    if accepted:
        # A producer may send one id twice within a batch: keep the first occurrence.
        first: dict[str, AcceptedEvent] = {}
        for event in accepted:
            first.setdefault(event.event_id, event)
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
            for e in first.values()
        ]
        stmt = _insert_ignoring_duplicates(conn, inbound_events).returning(
            inbound_events.c.event_id
        )
        # executemany with RETURNING: SQLAlchemy 2 batches it as multi-row VALUES
        # ("insertmanyvalues") on both SQLite and PostgreSQL.
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
        conn.execute(_insert_ignoring_duplicates(conn, dead_letters), dlq_rows)
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
        conn.execute(_insert_ignoring_duplicates(conn, outbox), outbox_rows)
    return new_ids


def count_inbound(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(inbound_events)).scalar_one())
