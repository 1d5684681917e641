"""Dead letters: every consumed message the exchange rejected, with its reason.

``dead_letters`` keeps each rejected message's reason and original bytes, keyed by its Kafka
position so a replay does not record it twice; a copy is queued in the outbox for
``points.dlq`` (headers ``dlq.reason_code``, ``dlq.reason``, ``dlq.source``,
``dlq.rejected_at``), in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
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
)

from points.db import insert_ignore, metadata
from points.outbox import outbox_table

__all__ = ["RejectedMessage", "dead_letters", "record_dead_letters"]

# BigInteger ids autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

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


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    topic: str
    partition: int
    offset: int
    reason_code: str
    reason: str
    key: bytes | None
    value: bytes | None


def record_dead_letters(
    conn: Connection, rejected: Sequence[RejectedMessage], *, dlq_topic: str
) -> None:
    """Record rejected messages and queue their ``dlq_topic`` copies, each at most once (by
    Kafka position), inside the caller's transaction."""
    if not rejected:
        return
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
