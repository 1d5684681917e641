"""The ``nudges`` table (migration 0014_nudges): every nudge decided, sent or suppressed.

One row per nudge id, a hash of (nudge, customer, cause) (points/nudges/policy.py): the
primary key is what makes a nudge "never twice for one cause" -- a replayed batch, a restarted
timer or a second worker inserts nothing new, and only a row that was inserted queues its
``customer.nudges`` message in the outbox, in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import JSON, CheckConstraint, Column, Date, DateTime, Index, String, Table

from points.db import metadata

__all__ = ["nudges"]

nudges = Table(
    "nudges",
    metadata,
    Column("nudge_id", String(64), primary_key=True),
    Column("nudge", String(64), nullable=False),  # the rule file's nudge id
    Column("kind", String(32), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("cause", String(200), nullable=False),
    Column("outcome", String(12), nullable=False),  # sent, suppressed
    Column("reason_code", String(32), nullable=True),  # why suppressed
    Column("reason", String(500), nullable=True),
    # the local day (rule file's zone) the trigger happened on: what the caps count
    Column("local_day", Date, nullable=False),
    Column("triggered_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("template", String(100), nullable=False),
    Column("offer_id", String(100), nullable=True),
    Column("message", JSON, nullable=False),  # the customer.nudges value (sent or not)
    CheckConstraint("outcome IN ('sent', 'suppressed')", name="outcome"),
    Index("ix_nudges_customer_day", "customer_id", "local_day"),
    Index("ix_nudges_decided", "decided_at"),
)
