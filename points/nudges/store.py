"""The nudges' SQL, in the caller's transaction: what was decided before, what the caps count,
and recording new decisions with their ``customer.nudges`` outbox rows.

Called only for a batch (or a timer round) that has nudge causes, so it costs the earning
batch nothing when no nudge fires: one query for the causes already decided, one lock
statement (PostgreSQL), one for the caps' counts, one insert, one outbox insert.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from points import jsonfast
from points.nudges.declarations import NudgeSection
from points.nudges.policy import NudgeCause, NudgeDecision, decide, week_start
from points.nudges.tables import nudges
from points.outbox import enqueue

__all__ = ["NudgesRecorded", "decided_ids", "record_nudges", "sent_per_day"]

_CHUNK = 1000


@dataclass(slots=True)
class NudgesRecorded:
    sent: int = 0
    suppressed: int = 0


def decided_ids(conn: Connection, ids: Collection[str]) -> set[str]:
    """The nudge ids among ``ids`` already decided (sent or suppressed)."""
    found: set[str] = set()
    wanted = sorted(ids)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(
            conn.execute(select(nudges.c.nudge_id).where(nudges.c.nudge_id.in_(chunk))).scalars()
        )
    return found


def sent_per_day(
    conn: Connection, customers: Collection[str], since: date
) -> dict[tuple[str, date], int]:
    """Nudges sent per (customer, local day) from ``since`` on."""
    counts: dict[tuple[str, date], int] = {}
    wanted = sorted(customers)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = conn.execute(
            select(nudges.c.customer_id, nudges.c.local_day, func.count())
            .where(
                nudges.c.customer_id.in_(chunk),
                nudges.c.local_day >= since,
                nudges.c.outcome == "sent",
            )
            .group_by(nudges.c.customer_id, nudges.c.local_day)
        )
        for customer_id, day, count in rows:
            if isinstance(day, str):  # SQLite returns the DATE as text
                day = date.fromisoformat(day)
            counts[(customer_id, day)] = int(count)
    return counts


def record_nudges(
    conn: Connection,
    section: NudgeSection,
    zone: ZoneInfo,
    ruleset_version: str,
    causes: Sequence[NudgeCause],
    *,
    topic: str,
    now: datetime,
) -> NudgesRecorded:
    """Decide the causes not decided before, record each decision and queue the sent ones on
    ``topic``; a cause decided before (a replay, a timer's second round) changes nothing."""
    recorded = NudgesRecorded()
    if not causes:
        return recorded
    done = decided_ids(conn, {cause.nudge_id for cause in causes})
    fresh = [cause for cause in causes if cause.nudge_id not in done]
    if not fresh:
        return recorded
    _serialize_customers(conn, {cause.customer_id for cause in fresh})
    since = min(week_start(cause.triggered_at.astimezone(zone).date()) for cause in fresh)
    counts = sent_per_day(conn, {cause.customer_id for cause in fresh}, since)
    decisions = decide(section, zone, ruleset_version, fresh, counts)
    # Queue only what this transaction recorded: a concurrent writer (the timer and a batch
    # deciding one win-back) that recorded the id first keeps its decision, sent or not.
    inserted = _insert_returning_ids(conn, [_row(decision, now) for decision in decisions])
    decisions = [decision for decision in decisions if decision.nudge_id in inserted]
    sent = [decision for decision in decisions if decision.outcome == "sent"]
    enqueue(conn, [_outbox_row(topic, decision) for decision in sent])
    recorded.sent = len(sent)
    recorded.suppressed = len(decisions) - len(sent)
    return recorded


# Transaction-scoped advisory locks, one per customer, taken in key order (so two deciders
# never wait on each other in a cycle); PostgreSQL evaluates the volatile lock function after
# the sort. The namespace keeps these keys apart from any other advisory lock.
_LOCK_CUSTOMERS = text(
    "SELECT pg_advisory_xact_lock(k) FROM ("
    " SELECT DISTINCT hashtextextended('points.nudges:' || c, 0) AS k"
    " FROM unnest(CAST(:customers AS text[])) AS c) AS keys ORDER BY k"
)


def _serialize_customers(conn: Connection, customers: Collection[str]) -> None:
    """Make the caps exact: a batch and the timer deciding nudges for one customer at the
    same moment would each count the nudges sent so far and each see room for one more. On
    PostgreSQL the second decider waits here until the first commits, then counts its nudge
    too. (SQLite runs one writing transaction at a time already.)"""
    if conn.dialect.name != "postgresql" or not customers:
        return
    conn.execute(_LOCK_CUSTOMERS, {"customers": sorted(customers)})


def _insert_returning_ids(conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert rows, skipping ids already there; the ids this statement inserted.

    One statement object executed with the list of rows: SQLAlchemy batches it into multi-row
    INSERTs itself ("insertmanyvalues", RETURNING included) from a compiled form it caches. A
    ``.values(rows)`` statement was compiled afresh for every batch (profiled: 2% of the
    earning worker's CPU with nudges on)."""
    if not rows:
        return set()
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(nudges).on_conflict_do_nothing().returning(nudges.c.nudge_id)
    return {str(nudge_id) for nudge_id in conn.execute(statement, rows).scalars()}


def _row(decision: NudgeDecision, now: datetime) -> dict[str, Any]:
    cause = decision.cause
    return {
        "nudge_id": decision.nudge_id,
        "nudge": cause.nudge.id,
        "kind": cause.nudge.kind,
        "customer_id": cause.customer_id,
        "cause": cause.cause,
        "outcome": decision.outcome,
        "reason_code": decision.reason_code,
        "reason": decision.reason,
        "local_day": decision.local_day,
        "triggered_at": cause.triggered_at,
        "decided_at": now,
        "template": cause.nudge.template,
        "offer_id": cause.nudge.offer_id,
        "message": decision.message,
    }


def _outbox_row(topic: str, decision: NudgeDecision) -> dict[str, Any]:
    dedupe = f"nudge:{decision.nudge_id}"
    return {
        "topic": topic,
        "message_key": decision.cause.customer_id.encode(),
        "message_value": jsonfast.dumps_bytes(decision.message),
        "headers": {"content-type": "application/json"},
        "dedupe_key": dedupe,
    }
