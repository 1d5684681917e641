"""Tables for operations staff's workflows (migration 0004)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from points.db import metadata

__all__ = ["adjustment_requests"]

BigId = BigInteger().with_variant(Integer(), "sqlite")

# An operator adjustment above the configured amount waits here for a second operator.
adjustment_requests = Table(
    "adjustment_requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(128), nullable=False),
    Column("program", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("delta", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("idempotency_key"),
    CheckConstraint("delta <> 0", name="delta_nonzero"),
    CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
    CheckConstraint("decided_by IS NULL OR decided_by <> requested_by", name="four_eyes"),
)
