"""Recorded refusals: the third outcome of a consumed message or an accepted request.

Every message the workers consume and every request the API accepts ends in exactly one of:
an effect (ledger entries, a state change), a dead letter (``dead_letters`` + ``points.dlq``,
for input that is malformed or not authentic), or a *refusal*: well-formed input that the
rules decline — a clawback the ledger cannot post, a referral the fraud guards stop, a member
link to a membership that belongs to someone else. A refusal is written here in the same
transaction as the rest of that input's outcome, so operations can list it
(``points-ledger refusals list``), the customer can see it (``GET /v1/me/refusals``) and
``points-ledger audit`` can prove by a query that nothing ended silently.

Each writer picks a ``dedupe_key`` that names the cause (for example ``clawback:<event_id>``):
a replayed message records its refusal once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Column, Connection, DateTime, Index, Integer, String, Table, Text

from points.db import insert_ignore, metadata

__all__ = ["Refusal", "record_refusals", "refusals"]

BigId = BigInteger().with_variant(Integer(), "sqlite")

refusals = Table(
    "refusals",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Names the cause; unique, so a replay records nothing twice.
    Column("dedupe_key", String(200), nullable=False, unique=True),
    # Which part of the system refused: earning, partners, referrals, api, ...
    Column("source", String(32), nullable=False),
    # What was refused: clawback, referral, member_link, late_event, ...
    Column("subject", String(32), nullable=False),
    # The id of the thing refused (a refund's event id, a referral id, a link request id).
    Column("subject_id", String(128), nullable=True),
    # The consumed message's event id, when a message caused it.
    Column("event_id", String(64), nullable=True),
    Column("customer_id", String(64), nullable=True),
    Column("reason_code", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_refusals_customer_id", "customer_id"),
    Index("ix_refusals_at", "at"),
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refusal to record; ``dedupe_key`` names its cause (see the module docstring)."""

    dedupe_key: str
    source: str
    subject: str
    reason_code: str
    reason: str
    at: datetime
    subject_id: str | None = None
    event_id: str | None = None
    customer_id: str | None = None


def record_refusals(conn: Connection, items: Sequence[Refusal]) -> int:
    """Insert the refusals in the caller's transaction, skipping causes already recorded;
    the number inserted."""
    if not items:
        return 0
    rows = [
        {
            "dedupe_key": r.dedupe_key,
            "source": r.source,
            "subject": r.subject,
            "subject_id": r.subject_id,
            "event_id": r.event_id,
            "customer_id": r.customer_id,
            "reason_code": r.reason_code,
            "reason": r.reason,
            "at": r.at,
        }
        for r in items
    ]
    return insert_ignore(conn, refusals, rows)
