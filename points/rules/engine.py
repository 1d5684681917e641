"""Earning: ``evaluate`` (real events) and ``preview`` (what-if), one code path, no side effects.

For a purchase the engine, in this order:

1. decides the moment: the event's ``occurred_at``, or ``now`` if the event claims a later time
   (a producer cannot timestamp itself into a future campaign), in the rule set's time zone;
2. computes a candidate line per firing rule, in file order, the base rate first because
   multipliers and campaigns are percentages of it (every division rounds down);
3. applies each rule's own ``cap`` (per transaction, day, month), then the rule set's overall
   ``caps`` in line order, so later lines are cut first;
4. advances the state: purchase count, cumulative spend, dates, partners seen, milestones,
   streaks, challenge progress, badges and the period counters the caps read.

Activity events (check-in, share, challenge opt-in) go through the same steps with the social,
streak and challenge rules. Every line names its rule, its points and why, and how a refund
treats it (``clawback``): see :mod:`points.rules.clawback`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from points.events import (
    ChallengeOptIn,
    CheckIn,
    CustomerOnboarded,
    CustomerProfile,
    PartnerPurchase,
    Purchase,
    Share,
)
from points.rules.errors import NotAnEarningEvent
from points.rules.plan import (
    AudiencePlan,
    CapPlan,
    ChallengePlan,
    Head,
    RulePlan,
    SocialPlan,
    StreakPlan,
    plan_of,
)
from points.rules.ruleset import ChallengeRule, RuleSet
from points.rules.state import (
    ChallengeState,
    RuleState,
    StreakState,
    advance_counters,
    copy_of,
    month_of,
)

__all__ = [
    "ClawbackPolicy",
    "EarningEvent",
    "EarningRecord",
    "Evaluation",
    "Line",
    "Profile",
    "Spend",
    "evaluate",
    "preview",
]

ClawbackPolicy = Literal["proportional", "full_refund", "milestone", "kept"]
EarningEvent = Purchase | PartnerPurchase | CheckIn | Share | ChallengeOptIn
_TOTAL = "total"


@dataclass(frozen=True, slots=True)
class Profile:
    """What the rules know about a customer (from the bank.customers topic)."""

    customer_id: str
    segment: str
    joined_at: datetime
    status: str = "active"
    birth_year: int | None = None

    @classmethod
    def from_event(cls, event: CustomerProfile | CustomerOnboarded) -> Profile:
        status = event.status if isinstance(event, CustomerProfile) else "active"
        return cls(
            customer_id=event.customer_id,
            segment=event.segment,
            joined_at=event.joined_at,
            status=status,
            birth_year=event.birth_year,
        )


@dataclass(frozen=True, slots=True)
class Spend:
    """A purchase-like input: a real purchase, a partner purchase, or a what-if for preview."""

    amount_minor: int
    currency: str
    mcc: str | None
    merchant_id: str
    channel: str
    occurred_at: datetime
    partner_id: str | None = None
    event_id: str = "preview"
    customer_id: str = "preview"

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError("amount_minor must be an integer number of minor units")
        if self.amount_minor <= 0:
            raise ValueError("amount_minor must be positive")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must carry a time zone")

    @classmethod
    def from_purchase(cls, event: Purchase) -> Spend:
        return cls(
            amount_minor=event.amount_minor,
            currency=event.currency,
            mcc=event.mcc,
            merchant_id=event.merchant_id,
            channel=event.channel,
            occurred_at=event.occurred_at,
            partner_id=event.partner_id,
            event_id=event.event_id,
            customer_id=event.customer_id,
        )

    @classmethod
    def from_partner_purchase(cls, event: PartnerPurchase) -> Spend:
        return cls(
            amount_minor=event.amount_minor,
            currency=event.currency,
            mcc=event.mcc,
            merchant_id=f"partner:{event.partner_id}",
            channel="partner",
            occurred_at=event.occurred_at,
            partner_id=event.partner_id,
            event_id=event.event_id,
            customer_id=event.customer_id,
        )


@dataclass(frozen=True, slots=True)
class Line:
    """One rule's contribution to an award."""

    rule_id: str
    kind: str
    points: int
    explanation: str
    clawback: ClawbackPolicy

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "kind": self.kind,
            "points": self.points,
            "explanation": self.explanation,
            "clawback": self.clawback,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Line:
        policy = data["clawback"]
        if policy not in ("proportional", "full_refund", "milestone", "kept"):
            raise ValueError(f"unknown clawback policy {policy!r}")
        points = data["points"]
        if not isinstance(points, int) or isinstance(points, bool) or points < 0:
            raise ValueError(f"line points must be a non-negative integer, got {points!r}")
        return cls(
            rule_id=str(data["rule_id"]),
            kind=str(data["kind"]),
            points=points,
            explanation=str(data["explanation"]),
            clawback=policy,
        )


@dataclass(frozen=True)
class EarningRecord:
    """What to keep about an earning so a later refund can claw it back exactly.

    ``refunded_minor`` and ``clawed`` (points taken back so far, per rule id) grow with each
    refund; :func:`points.rules.clawback.clawback` returns the updated record to store.
    """

    event_id: str
    customer_id: str
    ruleset_version: str
    amount_minor: int
    currency: str
    partner_id: str | None
    lines: tuple[Line, ...]
    refunded_minor: int = 0
    clawed: Mapping[str, int] = field(default_factory=dict)

    @property
    def points(self) -> int:
        return sum(line.points for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "ruleset_version": self.ruleset_version,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "partner_id": self.partner_id,
            "lines": [line.to_json() for line in self.lines],
            "refunded_minor": self.refunded_minor,
            "clawed": dict(sorted(self.clawed.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EarningRecord:
        partner = data["partner_id"]
        return cls(
            event_id=str(data["event_id"]),
            customer_id=str(data["customer_id"]),
            ruleset_version=str(data["ruleset_version"]),
            amount_minor=int(data["amount_minor"]),
            currency=str(data["currency"]),
            partner_id=None if partner is None else str(partner),
            lines=tuple(Line.from_json(line) for line in data["lines"]),
            refunded_minor=int(data["refunded_minor"]),
            clawed={str(k): int(v) for k, v in data["clawed"].items()},
        )


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one event: points, why, badges, and the customer's next rule state."""

    event_id: str
    customer_id: str
    ruleset_version: str
    points: int
    lines: tuple[Line, ...]
    badges_awarded: tuple[str, ...]
    notes: tuple[str, ...]
    state: RuleState
    amount_minor: int = 0
    currency: str | None = None
    partner_id: str | None = None

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of the rules that fired, in order (a line capped to 0 still fired)."""
        return tuple(line.rule_id for line in self.lines)

    def record(self) -> EarningRecord:
        """The record a later refund of this event needs (see points.rules.clawback)."""
        return EarningRecord(
            event_id=self.event_id,
            customer_id=self.customer_id,
            ruleset_version=self.ruleset_version,
            amount_minor=self.amount_minor,
            currency=self.currency or "",
            partner_id=self.partner_id,
            lines=self.lines,
        )

    def explain(self) -> str:
        """A few readable lines: total, then each rule's points and reason, then notes."""
        out = [f"{self.points} points (rule set {self.ruleset_version})"]
        out += [f"  {line.rule_id}: {line.points} - {line.explanation}" for line in self.lines]
        out += [f"  badge: {badge}" for badge in self.badges_awarded]
        out += [f"  note: {note}" for note in self.notes]
        return "\n".join(out)


# ------------------------------------------------------------------------------- public API


def evaluate(
    ruleset: RuleSet, event: EarningEvent, profile: Profile, state: RuleState, *, now: datetime
) -> Evaluation:
    """Award points for one event. Pure: same inputs, same result; time is the event's.

    ``now`` is the processing time; it only bounds an event that claims to be from the future.
    Refunds and reversals are not earning events: use :func:`points.rules.clawback.clawback`.
    """
    if isinstance(event, Purchase):
        return _evaluate_spend(ruleset, Spend.from_purchase(event), profile, state, now)
    if isinstance(event, PartnerPurchase):
        return _evaluate_spend(ruleset, Spend.from_partner_purchase(event), profile, state, now)
    if isinstance(event, CheckIn | Share | ChallengeOptIn):
        return _evaluate_activity(ruleset, event, profile, state, now)
    raise NotAnEarningEvent(
        f"{type(event).__name__} does not earn points; refunds and reversals go to clawback()"
    )


def preview(
    ruleset: RuleSet, spend: Spend, profile: Profile, state: RuleState, *, now: datetime
) -> Evaluation:
    """ "If I spend X at merchant Y now, what do I earn and why": the real path, nothing kept."""
    return _evaluate_spend(ruleset, spend, profile, state, now)


# ------------------------------------------------------------------------------ the context
#
# Everything below reads the rule set through its compiled plan (points.rules.plan): see
# there why. The order of the steps, and every text and number, is the documented one above.

#: a candidate line: (position of its rule in the file, the rule, points, why, clawback policy)
_Candidate = tuple[int, Head, int, str, ClawbackPolicy]
_FUTURE_NOTE = "occurred_at is later than now; evaluated as of now"


def _position(candidate: _Candidate) -> int:
    return candidate[0]


def _moment(
    zone: ZoneInfo, occurred_at: datetime, now: datetime
) -> tuple[datetime, date, list[str]]:
    """The moment an event counts at (never later than ``now``), its day in ``zone``, notes."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    if occurred_at > now:
        return now, now.astimezone(zone).date(), [_FUTURE_NOTE]
    return occurred_at, occurred_at.astimezone(zone).date(), []


def _joined_on(plan: RulePlan, profile: Profile) -> date:
    return profile.joined_at.astimezone(plan.zone).date()


def _days_since_purchase(plan: RulePlan, profile: Profile, state: RuleState, day: date) -> int:
    reference = state.last_purchase_on or _joined_on(plan, profile)
    return max(0, (day - reference).days)


def _audience_matches(
    plan: RulePlan, audience: AudiencePlan, profile: Profile, state: RuleState, day: date
) -> bool:
    if audience.segments is not None and profile.segment not in audience.segments:
        return False
    if audience.statuses is not None and profile.status not in audience.statuses:
        return False
    age = None if profile.birth_year is None else day.year - profile.birth_year
    if audience.age_below is not None and (age is None or age >= audience.age_below):
        return False
    if audience.age_at_least is not None and (age is None or age < audience.age_at_least):
        return False
    if (
        audience.joined_within_days is not None
        and (day - _joined_on(plan, profile)).days >= audience.joined_within_days
    ):
        return False
    return not (
        audience.dormant_for_days is not None
        and _days_since_purchase(plan, profile, state, day) < audience.dormant_for_days
    )


def _later(current: date | None, day: date) -> date:
    return day if current is None else max(current, day)


def _refrozen(updated: dict[str, Any], before: Mapping[str, Any]) -> Mapping[str, Any]:
    """A state mapping after the engine set some keys in ``updated`` (a copy of ``before``).

    Setting an existing key keeps the (sorted) order, so only new keys call for a sort.
    """
    if len(updated) == len(before):
        return MappingProxyType(updated)
    return MappingProxyType(dict(sorted(updated.items())))


# --------------------------------------------------------------------------------- spending


def _evaluate_spend(
    ruleset: RuleSet, spend: Spend, profile: Profile, state: RuleState, now: datetime
) -> Evaluation:
    plan = plan_of(ruleset)
    at, day, notes = _moment(plan.zone, spend.occurred_at, now)
    group = plan.mcc_group(spend.mcc)
    partner = spend.partner_id
    if partner is None:
        partner = plan.merchant_partner.get(spend.merchant_id)
    amount = spend.amount_minor

    if profile.status not in plan.eligible_statuses:
        return _nothing(
            plan, spend, partner, notes, f"customer status {profile.status!r} does not earn", state
        )
    if spend.currency != plan.currency:
        touched = replace(state, last_activity_on=_later(state.last_activity_on, day))
        return _nothing(
            plan,
            spend,
            partner,
            notes,
            f"currency {spend.currency} does not earn (rule set earns on {plan.currency})",
            touched,
        )

    route = plan.route(group, spend.channel, partner)
    candidates: list[_Candidate] = []
    next_count = state.purchase_count + 1
    next_spend = state.cumulative_spend_minor + amount

    base = route.base
    if base is not None:
        base_points = amount * base.points // base.per_minor
        candidates.append(
            (
                base.head.index,
                base.head,
                base_points,
                f"{base.rate_text}{plan.money(amount)} "
                f"({group or 'unclassified'} MCC {spend.mcc or '-'}, {spend.channel}), "
                "rounded down",
                "proportional",
            )
        )
    else:
        base_points = 0
        notes.append("no base_rate rule matches this purchase")

    for multiplier in route.multipliers:
        extra = base_points * (multiplier.multiplier_percent - 100) // 100
        candidates.append(
            (
                multiplier.head.index,
                multiplier.head,
                extra,
                f"co-brand {multiplier.multiplier_percent}% of base at partner {partner}: "
                f"{extra} extra",
                "proportional",
            )
        )

    if route.campaigns:
        at_utc = at.astimezone(UTC)  # campaign windows are compiled to UTC
        for campaign in route.campaigns:
            if (
                campaign.starts_at <= at_utc < campaign.ends_at
                and amount >= campaign.min_amount_minor
                and (
                    campaign.audience is None
                    or _audience_matches(plan, campaign.audience, profile, state, day)
                )
            ):
                if campaign.extra_percent is not None:
                    points = base_points * campaign.extra_percent // 100
                else:
                    points = campaign.fixed_points
                candidates.append(
                    (
                        campaign.head.index,
                        campaign.head,
                        points,
                        campaign.explanation,
                        campaign.policy,
                    )
                )

    for first, explanation in route.first_partner:
        if partner not in state.partners_seen and amount >= first.min_amount_minor:
            candidates.append(
                (first.head.index, first.head, first.points, explanation, "full_refund")
            )

    for comeback in plan.reactivations:
        idle = _days_since_purchase(plan, profile, state, day)
        if (
            idle >= comeback.dormant_days
            and amount >= comeback.min_amount_minor
            and (
                comeback.audience is None
                or _audience_matches(plan, comeback.audience, profile, state, day)
            )
        ):
            candidates.append(
                (
                    comeback.head.index,
                    comeback.head,
                    comeback.points,
                    f"welcome back: first purchase after {idle} days (>= {comeback.dormant_days})",
                    "full_refund",
                )
            )

    reached: list[str] = []
    for milestone in plan.milestones:
        if milestone.head.id not in state.milestones:
            value = next_count if milestone.by_count else next_spend
            if value >= milestone.threshold:
                reached.append(milestone.head.id)
                candidates.append(
                    (
                        milestone.head.index,
                        milestone.head,
                        milestone.points,
                        milestone.explanation,
                        "milestone",
                    )
                )

    # Streak and challenge progress is copied only when a rule moves it (most purchases
    # count in a period already counted, or toward no challenge).
    streaks: dict[str, StreakState] | None = None
    for streak in plan.purchase_streaks:
        if amount >= streak.min_amount_minor:
            moved, award = _advance_streak(streak, state.streaks, day)
            if moved is not None:
                if streaks is None:
                    streaks = copy_of(state.streaks)
                streaks[streak.head.id] = moved
            if award is not None:
                candidates.append(
                    (streak.head.index, streak.head, streak.points, award, "full_refund")
                )

    challenges: dict[str, ChallengeState] | None = None
    for challenge in route.challenges:
        progress, award = _advance_challenge(challenge, state.challenges, day, group, amount, notes)
        if progress is not None:
            if challenges is None:
                challenges = copy_of(state.challenges)
            challenges[challenge.head.id] = progress
        if award is not None:
            candidates.append(
                (challenge.head.index, challenge.head, challenge.points, award, "full_refund")
            )

    # Candidates were gathered kind by kind; lines and caps go in file order.
    candidates.sort(key=_position)
    lines, increments, total = _apply_caps(plan, candidates, state, day)

    milestones = state.milestones
    if reached:
        updated = copy_of(milestones)
        awarded = {line.rule_id: line.points for line in lines}
        for rule_id in reached:
            updated[rule_id] = awarded[rule_id]
        milestones = _refrozen(updated, state.milestones)
    partners_seen = state.partners_seen
    if partner is not None and partner not in partners_seen:
        partners_seen = partners_seen | {partner}
    badges = _new_badges(candidates, state)
    counters, latest_day = advance_counters(state.counters, state.latest_day, increments, day)

    next_state = RuleState._trusted(
        next_count,
        next_spend,
        _later(state.last_purchase_on, day),
        _later(state.last_activity_on, day),
        latest_day,
        state.badges | frozenset(badges) if badges else state.badges,
        partners_seen,
        milestones,
        state.streaks if streaks is None else _refrozen(streaks, state.streaks),
        state.challenges if challenges is None else _refrozen(challenges, state.challenges),
        counters,
    )
    return Evaluation(
        event_id=spend.event_id,
        customer_id=spend.customer_id,
        ruleset_version=plan.version,
        points=total,
        lines=lines,
        badges_awarded=tuple(badges),
        notes=tuple(notes),
        state=next_state,
        amount_minor=amount,
        currency=spend.currency,
        partner_id=partner,
    )


def _nothing(
    plan: RulePlan,
    spend: Spend,
    partner: str | None,
    notes: list[str],
    reason: str,
    next_state: RuleState,
) -> Evaluation:
    return Evaluation(
        event_id=spend.event_id,
        customer_id=spend.customer_id,
        ruleset_version=plan.version,
        points=0,
        lines=(),
        badges_awarded=(),
        notes=(*notes, reason),
        state=next_state,
        amount_minor=spend.amount_minor,
        currency=spend.currency,
        partner_id=partner,
    )


def _new_badges(candidates: Sequence[_Candidate], state: RuleState) -> list[str]:
    """Badges of the rules that fired (even if capped to 0 points) the customer lacks."""
    badges: list[str] = []
    for candidate in candidates:
        badge = candidate[1].badge
        if badge is not None and badge not in state.badges and badge not in badges:
            badges.append(badge)
    return badges


# --------------------------------------------------------------------------------- activity


def _evaluate_activity(
    ruleset: RuleSet,
    event: CheckIn | Share | ChallengeOptIn,
    profile: Profile,
    state: RuleState,
    now: datetime,
) -> Evaluation:
    plan = plan_of(ruleset)
    _, day, notes = _moment(plan.zone, event.occurred_at, now)
    action = event.event_type
    candidates: list[_Candidate] = []
    streaks: dict[str, StreakState] | None = None  # copied when a streak moves
    challenges: dict[str, ChallengeState] | None = None

    eligible = profile.status in plan.eligible_statuses
    if not eligible:
        notes.append(f"customer status {profile.status!r} does not earn")

    if isinstance(event, ChallengeOptIn):
        target = plan.by_id.get(event.challenge_id)
        if isinstance(target, ChallengeRule) and target.enabled:
            period = _challenge_period(target.period == "month", day)
            challenges = copy_of(state.challenges)
            current = challenges.get(target.id)
            if current is None or current.period != period:
                current = ChallengeState(period=period)
            challenges[target.id] = replace(current, opted_in=True)
        else:
            notes.append(f"no enabled challenge {event.challenge_id!r} in this rule set")

    for rule in plan.activity.get(action, ()) if eligible else ():
        if isinstance(rule, SocialPlan):
            candidates.append((rule.head.index, rule.head, rule.points, rule.explanation, "kept"))
        else:
            moved, award = _advance_streak(rule, state.streaks, day)
            if moved is not None:
                if streaks is None:
                    streaks = copy_of(state.streaks)
                streaks[rule.head.id] = moved
            if award is not None:
                candidates.append((rule.head.index, rule.head, rule.points, award, "kept"))

    lines, increments, total = _apply_caps(plan, candidates, state, day)
    badges = _new_badges(candidates, state)
    counters, latest_day = advance_counters(state.counters, state.latest_day, increments, day)
    next_state = RuleState._trusted(
        state.purchase_count,
        state.cumulative_spend_minor,
        state.last_purchase_on,
        _later(state.last_activity_on, day),
        latest_day,
        state.badges | frozenset(badges) if badges else state.badges,
        state.partners_seen,
        state.milestones,
        state.streaks if streaks is None else _refrozen(streaks, state.streaks),
        state.challenges if challenges is None else _refrozen(challenges, state.challenges),
        counters,
    )
    return Evaluation(
        event_id=event.event_id,
        customer_id=event.customer_id,
        ruleset_version=plan.version,
        points=total,
        lines=lines,
        badges_awarded=tuple(badges),
        notes=tuple(notes),
        state=next_state,
    )


# ---------------------------------------------------------------------------- rule helpers


def _advance_streak(
    rule: StreakPlan, streaks: Mapping[str, StreakState], day: date
) -> tuple[StreakState | None, str | None]:
    """Count this period in the streak: its new position (None: unchanged) and award text."""
    # date(1, 1, 1) is a Monday, so (ordinal - 1) // 7 numbers ISO weeks (Monday to Sunday).
    index = day.toordinal() if rule.daily else (day.toordinal() - 1) // 7
    current = streaks.get(rule.head.id)
    if current is not None and index <= current.last_period:
        return None, None  # counted this period already, or a late event: the streak stays
    if current is not None and index - current.last_period <= 1 + rule.grace_periods:
        length = current.length + 1
    else:
        length = 1
    moved = StreakState(last_period=index, length=length)
    hit = length % rule.length == 0 if rule.repeat else length == rule.length
    if not hit:
        return moved, None
    return moved, f"streak: {length} consecutive {rule.period}s{rule.grace_text}"


def _challenge_period(monthly: bool, day: date) -> str:
    if monthly:
        return month_of(day)
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _advance_challenge(
    rule: ChallengePlan,
    challenges: Mapping[str, ChallengeState],
    day: date,
    group: str | None,
    amount_minor: int,
    notes: list[str],
) -> tuple[ChallengeState | None, str | None]:
    """Count the purchase's category: the new progress (None: unchanged) and award text."""
    # The route only lists challenges the purchase's MCC group can count for.
    period = _challenge_period(rule.monthly, day)
    rule_id = rule.head.id
    current = challenges.get(rule_id)
    if current is None or current.period != period:
        current = ChallengeState(period=period)
    if current.completed or group is None or amount_minor < rule.min_amount_minor:
        return None, None
    if rule.categories is not None and group not in rule.categories:
        return None, None
    if rule.requires_opt_in and not current.opted_in:
        notes.append(f"challenge {rule_id} not joined this period; purchase not counted")
        return None, None
    categories = current.categories | {group}
    completed = len(categories) >= rule.target
    progress = ChallengeState(current.period, current.opted_in, categories, completed)
    if not completed:
        return progress, None
    names = ", ".join(sorted(categories))
    return progress, f"challenge: {rule.target} different categories in {period} ({names})"


# -------------------------------------------------------------------------------------- caps


def _room(
    cap: CapPlan,
    name: str,
    counters: Mapping[str, int],
    day_prefix: str | None,
    month_prefix: str | None,
) -> tuple[int, str]:
    """Points still allowed under ``cap`` for counter ``name``, and which limit binds.

    A prefix is None when that period's counters are no longer kept (a late event): its cap
    counts as used up.
    """
    limits: list[tuple[int, str]] = []
    if cap.per_transaction is not None:
        limits.append((cap.per_transaction, cap.transaction_label))
    if cap.per_day is not None:
        used = cap.per_day if day_prefix is None else counters.get(day_prefix + name, 0)
        limits.append((max(0, cap.per_day - used), cap.day_label))
    if cap.per_month is not None:
        used = cap.per_month if month_prefix is None else counters.get(month_prefix + name, 0)
        limits.append((max(0, cap.per_month - used), cap.month_label))
    return min(limits)


def _apply_caps(
    plan: RulePlan, candidates: Sequence[_Candidate], state: RuleState, day: date
) -> tuple[tuple[Line, ...], dict[str, int], int]:
    # Counter keys are "d:<YYYY-MM-DD>:<name>" and "m:<YYYY-MM>:<name>" (see state.day_key).
    day_iso = day.isoformat()
    day_prefix = f"d:{day_iso}:"
    month_prefix = f"m:{day_iso[:7]}:"
    counters = state.counters
    kept_day = day_prefix if state.is_day_kept(day) else None
    kept_month = month_prefix if state.is_month_kept(day) else None
    increments: dict[str, int] = {}
    lines: list[Line] = []
    total_room: int | None = None
    total_label = ""
    if plan.caps is not None:
        total_room, total_label = _room(plan.caps, _TOTAL, counters, kept_day, kept_month)
    total = 0
    for _, head, points, explanation, policy in candidates:
        cap = head.cap
        if cap is not None:
            rule_room, rule_label = _room(cap, head.counter, counters, kept_day, kept_month)
            if points > rule_room:
                points = rule_room
                explanation += f"; capped at {rule_label} for this rule"
        if total_room is not None:
            if points > total_room:
                points = total_room
                explanation += f"; capped at {total_label} overall"
            total_room -= points
        if cap is not None:
            key = day_prefix + head.counter
            increments[key] = increments.get(key, 0) + points
            key = month_prefix + head.counter
            increments[key] = increments.get(key, 0) + points
        lines.append(Line(head.id, head.kind, points, explanation, policy))
        total += points
    increments[day_prefix + _TOTAL] = total
    increments[month_prefix + _TOTAL] = total
    return tuple(lines), increments, total
