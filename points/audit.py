"""``audit``: prove by queries that no consumed input ended silently.

Every inbox event (``inbound_events``) must have an outcome that a query can find:

=====================  ==========================================================================
event types            outcome accepted
=====================  ==========================================================================
any                    a dead letter at its Kafka position (a rule refused it after its contract
                       passed), or a recorded refusal naming it (``refusals.event_id``, or the
                       ``late:<event_id>`` / ``clawback:<event_id>`` dedupe keys)
purchase,              its earning record (``earning_records``: kept for every purchase, 0 points
partner_purchase       included, since a later refund needs it) or a committed ``earn:<id>`` entry
refund, reversal       a committed ``clawback:<id>`` entry; parked (``parked_events``, waiting for
                       its purchase); or no points to take back: the original's record exists
                       and it earned none (no committed ``earn:<original>``), or the refund is
                       partial (its share may round to 0)
customer_profile,      the customer's stored profile (``customer_profiles``)
customer_onboarded
check_in, share,       a committed ``earn:<id>`` entry, or (0 points by rule) the customer's
challenge_opt_in       rule state (``customer_rule_state``): an activity event that earns nothing
                       leaves no per-event row, only its effect on streaks and counters
=====================  ==========================================================================

Events of other types (the partner exchange's swaps, links and referral sign-ups) are counted
as ``not_audited`` by type, never passed silently. Then:

* a refund must not have two outcomes (a committed clawback *and* a refusal);
* a ledger entry the ledger rejected for an ``earn:``/``clawback:`` key must have a refusal;
* every dead letter must have been relayed to points.dlq (its ``dlq:`` outbox row relayed);
* every ``customer_onboarded`` carrying a ``referral_code`` has a referral row for that referee
  or a recorded refusal (subject ``referral``) for the customer.

Each check is one set-based statement (anti-joins on unique keys), so the whole audit is a
handful of scans, not a loop over events: ~250k events take seconds on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, exists, func, literal, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from points.dead_letters import dead_letters
from points.earning.tables import (
    customer_profiles,
    customer_rule_state,
    earning_records,
    parked_events,
)
from points.exchange.tables import referrals
from points.inbox import inbound_events
from points.ledger.tables import entries
from points.outbox import outbox_table
from points.refusals import refusals

__all__ = ["AUDITED_TYPES", "AuditReport", "Offender", "audit"]

PURCHASES = ("purchase", "partner_purchase")
REFUNDS = ("refund", "reversal")
PROFILES = ("customer_profile", "customer_onboarded")
ACTIVITY = ("check_in", "share", "challenge_opt_in")
AUDITED_TYPES = PURCHASES + REFUNDS + PROFILES + ACTIVITY
OFFENDERS_MAX = 1000

ib = inbound_events


@dataclass(frozen=True, slots=True)
class Offender:
    check: str
    subject: str
    customer_id: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "subject": self.subject, "customer_id": self.customer_id,
                "detail": self.detail}


@dataclass
class AuditReport:
    events: int
    not_audited: dict[str, int]
    offenders: list[Offender] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.offenders

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "not_audited": self.not_audited,
                "violations_by_check": self.counts,
                "offenders": [o.to_json() for o in self.offenders]}


def _committed(key: ColumnElement[Any]) -> ColumnElement[bool]:
    return exists().where(entries.c.idempotency_key == key, entries.c.status == "committed")


def _refused(event_id: ColumnElement[Any]) -> ColumnElement[bool]:
    return or_(
        exists().where(refusals.c.event_id == event_id),
        exists().where(refusals.c.dedupe_key == literal("late:") + event_id),
        exists().where(refusals.c.dedupe_key == literal("clawback:") + event_id),
    )


def _dead_lettered() -> ColumnElement[bool]:
    return exists().where(
        dead_letters.c.topic == ib.c.topic,
        dead_letters.c.kafka_partition == ib.c.kafka_partition,
        dead_letters.c.kafka_offset == ib.c.kafka_offset,
    )


def _outcome_found() -> ColumnElement[bool]:
    eid = ib.c.event_id
    original = ib.c.payload["original_event_id"].as_string()
    earned = _committed(literal("earn:") + eid)
    purchase = and_(ib.c.event_type.in_(PURCHASES),
                    or_(exists().where(earning_records.c.event_id == eid), earned))
    # The purchase was seen (its record exists) and either earned nothing or this refund is
    # partial (its share may round to 0 points).
    nothing_to_claw = and_(
        exists().where(earning_records.c.event_id == original),
        or_(
            not_(_committed(literal("earn:") + original)),
            exists().where(
                earning_records.c.event_id == original,
                ib.c.payload["amount_minor"].as_integer()
                < earning_records.c.record["amount_minor"].as_integer(),
            ),
        ),
    )
    refund = and_(ib.c.event_type.in_(REFUNDS), or_(
        _committed(literal("clawback:") + eid),
        exists().where(parked_events.c.event_id == eid),
        nothing_to_claw,
    ))
    profile = and_(ib.c.event_type.in_(PROFILES),
                   exists().where(customer_profiles.c.customer_id == ib.c.customer_id))
    activity = and_(ib.c.event_type.in_(ACTIVITY), or_(
        earned, exists().where(customer_rule_state.c.customer_id == ib.c.customer_id)))
    return or_(_dead_lettered(), _refused(eid), purchase, refund, profile, activity)


def _rows(conn: Connection, check: str, stmt: Any) -> list[Offender]:
    return [Offender(check, str(s), c, str(d))
            for s, c, d in conn.execute(stmt.limit(OFFENDERS_MAX))]


def _checks(conn: Connection) -> list[tuple[str, Any]]:
    eid = ib.c.event_id
    no_outcome = select(eid, ib.c.customer_id, literal("no outcome for ") + ib.c.event_type).where(
        ib.c.event_type.in_(AUDITED_TYPES), not_(_outcome_found())).order_by(eid)
    two_outcomes = select(eid, ib.c.customer_id,
                          literal("refund both clawed back and refused")).where(
        ib.c.event_type.in_(REFUNDS), _committed(literal("clawback:") + eid),
        exists().where(refusals.c.dedupe_key == literal("clawback:") + eid)).order_by(eid)
    rejected = select(entries.c.idempotency_key, entries.c.customer_id,
                      literal("ledger rejected it (") + entries.c.reject_code
                      + literal(") and no refusal is recorded")).where(
        entries.c.status == "rejected",
        or_(entries.c.idempotency_key.like("earn:%"),
            entries.c.idempotency_key.like("clawback:%")),
        not_(exists().where(refusals.c.dedupe_key == entries.c.idempotency_key)),
    ).order_by(entries.c.idempotency_key)
    dlq_key = (literal("dlq:") + dead_letters.c.topic + literal(":")
               + func.cast(dead_letters.c.kafka_partition, outbox_table.c.dedupe_key.type)
               + literal(":")
               + func.cast(dead_letters.c.kafka_offset, outbox_table.c.dedupe_key.type))
    unrelayed = select(
        dead_letters.c.topic + literal("/")
        + func.cast(dead_letters.c.kafka_partition, outbox_table.c.dedupe_key.type)
        + literal("/") + func.cast(dead_letters.c.kafka_offset, outbox_table.c.dedupe_key.type),
        literal(None), literal("dead letter ") + dead_letters.c.reason_code
        + literal(" not relayed to points.dlq"),
    ).where(not_(exists().where(outbox_table.c.dedupe_key == dlq_key,
                                outbox_table.c.relayed_at.is_not(None)))).order_by(
        dead_letters.c.id)
    code = ib.c.payload["referral_code"].as_string()
    referral = select(eid, ib.c.customer_id,
                      literal("onboarded with referral code ") + code
                      + literal(": no referral and no refusal")).where(
        ib.c.event_type == "customer_onboarded", code.is_not(None), code != "",
        not_(exists().where(referrals.c.referee_id == ib.c.customer_id)),
        not_(exists().where(refusals.c.subject == "referral",
                            or_(refusals.c.event_id == eid,
                                refusals.c.customer_id == ib.c.customer_id))),
        not_(_dead_lettered()),
    ).order_by(eid)
    return [("no_outcome", no_outcome), ("two_outcomes", two_outcomes),
            ("rejected_entry_unrecorded", rejected), ("dead_letter_not_relayed", unrelayed),
            ("referral_without_outcome", referral)]


def audit(conn: Connection) -> AuditReport:
    """Run every check in the caller's transaction (one snapshot on PostgreSQL's
    REPEATABLE READ); at most ``OFFENDERS_MAX`` offenders per check are listed."""
    events = int(conn.execute(select(func.count()).select_from(ib)).scalar_one())
    not_audited = {str(t): int(n) for t, n in conn.execute(
        select(ib.c.event_type, func.count()).where(ib.c.event_type.not_in(AUDITED_TYPES))
        .group_by(ib.c.event_type).order_by(ib.c.event_type))}
    report = AuditReport(events=events, not_audited=not_audited)
    for check, stmt in _checks(conn):
        found = _rows(conn, check, stmt)
        if found:
            report.counts[check] = len(found)
            report.offenders.extend(found)
    return report


def offenders_of(report: AuditReport, check: str) -> Sequence[Offender]:
    return [o for o in report.offenders if o.check == check]
