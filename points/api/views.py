"""What each endpoint answers, built from the read queries and the rules engine.

Plain functions on a connection (run in a worker thread by the app); no HTTP here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from points.api import reads
from points.api.errors import InvalidCursor
from points.api.schemas import (
    Badge,
    ChallengeProgress,
    EarningPreview,
    MilestoneProgress,
    PartnerProgram,
    PartnerPrograms,
    PreviewRequest,
    Progress,
    Referral,
    ReferralItem,
    ReferralStatusCount,
    RuleLine,
    StreakProgress,
)
from points.exchange.referral_views import ReferralRecord
from points.partners import PartnersConfig
from points.rules import Profile, PurchaseFacts, RuleSet, RuleState, preview
from points.rules.ruleset import ChallengeRule, MilestoneRule, StreakRule

__all__ = [
    "ActivityRow",
    "activity",
    "activity_body",
    "activity_json",
    "balance_body",
    "decode_cursor",
    "earning_preview",
    "encode_cursor",
    "partner_programs",
    "progress",
    "referral",
]



def balance_body(customer_id: str, view: reads.BalanceView, now: datetime) -> dict[str, Any]:
    # A plain dict: the hot path skips model validation (tests pin it to the Balance schema).
    return {
        "customer_id": customer_id,
        "available": view.available,
        "held": view.held,
        "debt": view.debt,
        "expiring_30d": view.expiring_30d,
        "expiring_90d": view.expiring_90d,
        "as_of": now.isoformat(),
    }


# ------------------------------------------------------------------------------- activity


def encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"e:{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The entry id a cursor points before; only the customer's own entries are ever read,
    so a forged cursor can do no more than page the caller's own activity."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        value = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor("the cursor is not one this API returned") from None
    if prefix != "e" or not 0 < value < 2**63 or number != str(value):
        raise InvalidCursor("the cursor is not one this API returned")
    return value


_SUMMARIES = {
    "earn": "points earned",
    "referral": "referral reward",
    "swap": "points received from a partner program",
    "spend": "points spent",
    "hold": "points reserved for a swap",
    "post": "reserved points transferred",
    "void": "reserved points returned",
    "adjust": "adjustment by the bank",
    "reverse": "correction of an earlier line",
    "clawback": "points taken back after a refund",
    "expire": "points expired",
}
# A hold is a swap's unless the gifts desk made it (its reason's campaign says which): a
# customer who sent a red packet must not read that points went to a partner program.
_HOLD_SUMMARIES = {
    "gift": "points reserved for a gift",
    "red_packet": "points reserved for a red packet",
}


_rule_texts: tuple[RuleSet | None, dict[str, tuple[str, str]]] = (None, {})


def _rule_texts_of(ruleset: RuleSet) -> dict[str, tuple[str, str]]:
    """(kind, explanation) of each rule by id, kept for the last rule set asked about.

    ``RuleSet.rule`` reads a pydantic private attribute (about 2 µs through the model's
    ``__getattr__``), once per app-earning line of every activity page; this is a dict."""
    global _rule_texts
    cached, texts = _rule_texts
    if cached is not ruleset:
        texts = {rule.id: (rule.kind, rule.description or rule.id) for rule in ruleset.rules}
        _rule_texts = (ruleset, texts)
    return texts


def _rule_lines_from_ruleset(ruleset: RuleSet, rule_ids: Sequence[str], amount: int
                             ) -> list[dict[str, Any]]:
    texts = _rule_texts_of(ruleset)
    points = amount if len(rule_ids) == 1 else None
    lines = []
    for rule_id in rule_ids:
        kind, explanation = texts.get(rule_id) or ("unknown", rule_id)
        lines.append({"rule_id": rule_id, "kind": kind, "points": points,
                      "explanation": explanation})
    return lines


ActivityRow = tuple[int, str, datetime, Mapping[str, Any] | None, int | None, int, int, int,
                    Mapping[str, Any] | None, str | None]
"""One statement line as :func:`activity_body` takes it, the columns of
:data:`points.api.pgread.ACTIVITY_SQL` (PostgreSQL hands its rows over as they come):
entry id, kind, created at, the entry's reason as stored (JSON, or None), the entry a
clawback takes back from, the wallet, held and receivable deltas (credits minus debits), the
purchase's earning record (JSON with ``lines``, ``amount_minor``, ``currency``; an ``earn``'s
own, else None) and the source event of the entry a clawback takes back from."""


def activity(
    conn: Connection, ruleset: RuleSet, customer_id: str, *, cursor: str | None, limit: int
) -> dict[str, Any]:
    """The page through the portable reads (SQLite; PostgreSQL reads it in one statement,
    :meth:`points.api.pgread.PgReader.activity_page`); both build it with
    :func:`activity_body`."""
    before = decode_cursor(cursor)
    page, more = reads.activity_page(conn, customer_id, before_entry_id=before, limit=limit)
    targets = reads.source_events_of(
        conn, [e.target_entry_id for e in page if e.kind == "clawback" and e.target_entry_id]
    )
    events = {e.reason.source_event for e in page if e.reason.source_event}
    records = reads.earning_records_for(conn, customer_id, events)
    rows: list[ActivityRow] = [
        (e.entry_id, e.kind, e.created_at, e.reason.to_json(), e.target_entry_id,
         e.wallet_delta, e.held_delta, -e.debt_delta,
         records.get(e.reason.source_event or "") if e.kind == "earn" else None,
         targets.get(e.target_entry_id or 0) if e.kind == "clawback" else None)
        for e in page
    ]
    return activity_body(ruleset, rows, more)


def activity_body(ruleset: RuleSet, rows: Iterable[ActivityRow], more: bool) -> dict[str, Any]:
    """The ``ActivityPage`` as plain JSON-ready values (``at`` a datetime), straight from the
    rows: no model validation (the response model re-validated every line of every page; the
    integration tests validate every page they read against the schema) and no object per
    line (the reason is read from its JSON as :meth:`points.ledger.Reason.from_json` reads it:
    text as ``str``, absent or null as None)."""
    items = []
    entry_id = 0
    for (entry_id, kind, created_at, reason, _target, wallet, held, receivable, record,
         target_event) in rows:
        if not reason:
            reason = _NO_REASON
        get = reason.get
        rule_ids = [str(r) for r in get("rule_ids") or ()]
        source_event, campaign = _text(get("source_event")), _text(get("campaign"))
        version, note = _text(get("ruleset_version")), _text(get("note"))
        summary = _SUMMARIES.get(kind, kind)
        if kind == "hold" and campaign in _HOLD_SUMMARIES:
            summary = _HOLD_SUMMARIES[campaign]
        rules: list[dict[str, Any]] = []
        if record is not None:
            rules = [
                {"rule_id": str(line["rule_id"]), "kind": str(line["kind"]),
                 "points": int(line["points"]), "explanation": str(line["explanation"])}
                for line in record.get("lines", [])
            ]
            summary = (f"{summary} on a purchase of {int(record['amount_minor'])} "
                       f"{record['currency']} minor units")
        elif rule_ids and kind in ("earn", "referral"):
            rules = _rule_lines_from_ruleset(ruleset, rule_ids, wallet)
        if target_event and kind == "clawback":
            summary = f"{summary} ({source_event} refunds {target_event})"
        if campaign:
            summary = f"{summary}; campaign {campaign}"
        items.append({
            "entry_id": entry_id, "kind": kind, "at": created_at.astimezone(UTC),
            "points": wallet, "held_delta": held, "debt_delta": -receivable,
            "explanation": {
                "summary": summary, "rules": rules, "rule_ids": rule_ids,
                "campaign": campaign, "ruleset_version": version,
                "source_event": source_event, "note": note,
            },
        })
    return {"items": items, "next_cursor": encode_cursor(entry_id) if more and items else None}


_NO_REASON: Mapping[str, Any] = {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def activity_json(body: dict[str, Any]) -> bytes:
    """The page's JSON bytes, exactly as pydantic writes the ActivityPage model (UTC as
    ``Z``; a test compares them byte for byte), by orjson (faster than pydantic here)."""
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


# --------------------------------------------------------------------------- rules-backed


def _state(conn: Connection, customer_id: str) -> RuleState:
    raw = reads.rule_state_json(conn, customer_id)
    return RuleState() if raw is None else RuleState.from_json(raw)


def _profile(conn: Connection, customer_id: str) -> Profile:
    raw = reads.profile_json(conn, customer_id)
    if raw is None:
        return Profile.unknown(customer_id)
    return Profile(
        customer_id=customer_id,
        segment=str(raw["segment"]),
        joined_at=datetime.fromisoformat(str(raw["joined_at"])),
        status=str(raw.get("status") or "active"),
        birth_year=raw.get("birth_year"),
    )


def earning_preview(
    conn: Connection, ruleset: RuleSet, customer_id: str, body: PreviewRequest, now: datetime
) -> EarningPreview:
    """What a purchase now would earn, by the same code path as a real one; nothing saved."""
    spend = PurchaseFacts(
        amount_minor=body.amount_minor, currency=body.currency, mcc=body.mcc,
        merchant_id=body.merchant_id, channel=body.channel, occurred_at=now,
        partner_id=body.partner_id, customer_id=customer_id,
    )
    result = preview(ruleset, spend, _profile(conn, customer_id), _state(conn, customer_id),
                     now=now)
    return EarningPreview(
        points=result.points,
        ruleset_version=result.ruleset_version,
        lines=[RuleLine(rule_id=line.rule_id, kind=line.kind, points=line.points,
                        explanation=line.explanation) for line in result.lines],
        badges_awarded=list(result.badges_awarded),
        notes=list(result.notes),
        explanation=result.explain(),
    )


def _period_index(day: date, period: str) -> int:
    # As the engine counts streaks: day ordinals, or weeks since 0001-01-01 (a Monday).
    return day.toordinal() if period == "day" else (day.toordinal() - 1) // 7


def _challenge_period(day: date, period: str) -> str:
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def progress(conn: Connection, ruleset: RuleSet, customer_id: str, now: datetime) -> Progress:
    state = _state(conn, customer_id)
    today = now.astimezone(ruleset.zone).date()
    badge_rules: dict[str, Any] = {}
    streaks, challenges, milestones = [], [], []
    for rule in ruleset.active_rules():
        badge = getattr(rule, "badge", None)
        if badge:
            badge_rules.setdefault(badge, rule)
        if isinstance(rule, StreakRule):
            found = state.streaks.get(rule.id)
            current = 0
            counted = False
            if found is not None:
                index = _period_index(today, rule.period)
                counted = found.last_period >= index
                alive = index - found.last_period <= 1 + rule.grace_periods
                current = found.length if alive or counted else 0
            streaks.append(StreakProgress(
                rule_id=rule.id, description=rule.description or None, period=rule.period,
                length=rule.length, current=current, counted_this_period=counted,
                points=rule.points, badge=rule.badge,
            ))
        elif isinstance(rule, ChallengeRule):
            period = _challenge_period(today, rule.period)
            ch = state.challenges.get(rule.id)
            same = ch is not None and ch.period == period
            challenges.append(ChallengeProgress(
                rule_id=rule.id, description=rule.description or None, period=period,
                target=rule.target,
                categories_done=sorted(ch.categories) if same and ch else [],
                requires_opt_in=rule.requires_opt_in,
                opted_in=bool(same and ch and ch.opted_in),
                completed=bool(same and ch and ch.completed),
                points=rule.points, badge=rule.badge,
            ))
        elif isinstance(rule, MilestoneRule):
            current = (state.purchase_count if rule.metric == "purchase_count"
                       else state.cumulative_spend_minor)
            milestones.append(MilestoneProgress(
                rule_id=rule.id, description=rule.description or None, metric=rule.metric,
                threshold=rule.threshold, current=current,
                reached=rule.id in state.milestones, points=rule.points, badge=rule.badge,
            ))
    badges = [
        Badge(badge=b, rule_id=getattr(badge_rules.get(b), "id", None),
              description=(getattr(badge_rules.get(b), "description", "") or None))
        for b in sorted(state.badges)
    ]
    return Progress(
        ruleset_version=ruleset.version, purchase_count=state.purchase_count,
        cumulative_spend_minor=state.cumulative_spend_minor, badges=badges, streaks=streaks,
        challenges=challenges, milestones=milestones,
    )


# --------------------------------------------------------------------------- referral


def referral(conn: Connection, customer_id: str, secret: bytes, now: datetime) -> Referral:
    """The customer's code (stored now if this is the first time it is shown, so it is the
    code onboarding resolves), their referrals with states and reasons, and their own."""
    from points.exchange.referral_records import ensure_code
    from points.exchange.referral_views import customer_referrals
    from points.exchange.tables import referrals

    code = ensure_code(conn, secret, "customer", customer_id, now)
    rows = conn.execute(
        select(referrals.c.status, func.count())
        .where(referrals.c.referrer_kind == "customer", referrals.c.referrer_id == customer_id)
        .group_by(referrals.c.status)
        .order_by(referrals.c.status)
    ).all()
    counts = [ReferralStatusCount(status=str(s), count=int(n)) for s, n in rows]
    made, own = customer_referrals(conn, customer_id)
    referred_by = None if own is None or own.state == "refused" else own.state
    rewarded = sum(c.count for c in counts if c.status == "rewarded")
    return Referral(
        code=code, referred=counts, rewarded_count=rewarded, referred_by=referred_by,
        referrals=[_referral_item(r, customer_id) for r in made],
        own_referral=None if own is None else _referral_item(own, customer_id),
    )


def _referral_item(record: ReferralRecord, customer_id: str) -> ReferralItem:
    return ReferralItem(
        referral_id=record.referral_id, state=record.state,  # type: ignore[arg-type]
        reason_code=record.reason_code, reason=record.customer_reason,
        signed_up_at=record.signed_up_at, qualify_by=record.qualify_by,
        qualified_at=record.qualified_at, points=record.points_to(customer_id),
    )


# --------------------------------------------------------------------------- partners


def partner_programs(config: PartnersConfig) -> PartnerPrograms:
    out = []
    for p in config.partners.values():
        out.append(PartnerProgram(
            id=p.id, name=p.name, unit=p.unit, enabled=p.enabled, rate_version=p.rate_version,
            outbound_rate_num=p.outbound.rate.num, outbound_rate_den=p.outbound.rate.den,
            min_points=p.outbound.min_points, max_points=p.outbound.max_points,
            multiple_points=p.outbound.multiple_points,
            fee_fixed_points=p.fees.fixed_points, fee_rate_bp=p.fees.rate_bp,
            fee_min_points=p.fees.min_points, fee_max_points=p.fees.max_points,
            inbound_enabled=p.inbound.enabled,
            inbound_rate_num=p.inbound.rate.num if p.inbound.enabled else None,
            inbound_rate_den=p.inbound.rate.den if p.inbound.enabled else None,
            daily_limit_points=p.limits.daily_points,
            yearly_limit_points=p.limits.yearly_points,
            confirmation_deadline_s=p.confirmation_deadline_s, quote_ttl_s=p.quote_ttl_s,
        ))
    return PartnerPrograms(timezone=config.timezone, partners=out)


