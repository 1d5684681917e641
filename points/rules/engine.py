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
from datetime import date, datetime
from typing import Any, Literal

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
from points.rules.ruleset import (
    Audience,
    BaseRateRule,
    CampaignRule,
    Cap,
    ChallengeRule,
    FirstPartnerPurchaseRule,
    MilestoneRule,
    PartnerMultiplierRule,
    ReactivationRule,
    Rule,
    RuleSet,
    SocialRule,
    SpendMatch,
    StreakRule,
)
from points.rules.state import (
    ChallengeState,
    RuleState,
    StreakState,
    day_key,
    month_key,
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


@dataclass(frozen=True, slots=True)
class _Moment:
    at: datetime
    day: date
    notes: tuple[str, ...]


def _moment(ruleset: RuleSet, occurred_at: datetime, now: datetime) -> _Moment:
    notes: tuple[str, ...] = ()
    at = occurred_at
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    if occurred_at > now:
        at = now
        notes = ("occurred_at is later than now; evaluated as of now",)
    local = at.astimezone(ruleset.zone)
    return _Moment(at=at, day=local.date(), notes=notes)


def _age(profile: Profile, day: date) -> int | None:
    return None if profile.birth_year is None else day.year - profile.birth_year


def _days_since_purchase(ruleset: RuleSet, profile: Profile, state: RuleState, day: date) -> int:
    reference = state.last_purchase_on or profile.joined_at.astimezone(ruleset.zone).date()
    return max(0, (day - reference).days)


def _audience_matches(
    ruleset: RuleSet, audience: Audience, profile: Profile, state: RuleState, day: date
) -> bool:
    if audience.segments is not None and profile.segment not in audience.segments:
        return False
    if audience.statuses is not None and profile.status not in audience.statuses:
        return False
    age = _age(profile, day)
    if audience.age_below is not None and (age is None or age >= audience.age_below):
        return False
    if audience.age_at_least is not None and (age is None or age < audience.age_at_least):
        return False
    if audience.joined_within_days is not None:
        joined = profile.joined_at.astimezone(ruleset.zone).date()
        if (day - joined).days >= audience.joined_within_days:
            return False
    return not (
        audience.dormant_for_days is not None
        and _days_since_purchase(ruleset, profile, state, day) < audience.dormant_for_days
    )


def _spend_matches(match: SpendMatch, spend: Spend, group: str | None, partner: str | None) -> bool:
    if spend.amount_minor < match.min_amount_minor:
        return False
    if match.mcc_groups is not None and group not in match.mcc_groups:
        return False
    if match.channels is not None and spend.channel not in match.channels:
        return False
    return match.partners is None or partner in match.partners


def _money(ruleset: RuleSet, amount_minor: int) -> str:
    scale = 10**ruleset.currency_exponent
    if scale == 1:
        return f"{amount_minor} {ruleset.currency}"
    whole, part = divmod(amount_minor, scale)
    return f"{whole}.{part:0{ruleset.currency_exponent}d} {ruleset.currency}"


@dataclass(slots=True)
class _Candidate:
    rule: Rule
    points: int
    explanation: str
    clawback: ClawbackPolicy


# --------------------------------------------------------------------------------- spending


def _evaluate_spend(
    ruleset: RuleSet, spend: Spend, profile: Profile, state: RuleState, now: datetime
) -> Evaluation:
    moment = _moment(ruleset, spend.occurred_at, now)
    day = moment.day
    notes = list(moment.notes)
    group = ruleset.mcc_group(spend.mcc)
    partner = ruleset.partner_of(spend.merchant_id, spend.partner_id)

    def nothing(reason: str, next_state: RuleState) -> Evaluation:
        return Evaluation(
            event_id=spend.event_id,
            customer_id=spend.customer_id,
            ruleset_version=ruleset.version,
            points=0,
            lines=(),
            badges_awarded=(),
            notes=(*notes, reason),
            state=next_state,
            amount_minor=spend.amount_minor,
            currency=spend.currency,
            partner_id=partner,
        )

    if profile.status not in ruleset.eligible_statuses:
        return nothing(f"customer status {profile.status!r} does not earn", state)
    if spend.currency != ruleset.currency:
        touched = replace(state, last_activity_on=_later(state.last_activity_on, day))
        return nothing(
            f"currency {spend.currency} does not earn (rule set earns on {ruleset.currency})",
            touched,
        )

    candidates: list[_Candidate] = []
    next_count = state.purchase_count + 1
    next_spend = state.cumulative_spend_minor + spend.amount_minor
    streaks = dict(state.streaks)
    challenges = dict(state.challenges)
    reached: list[MilestoneRule] = []
    badges: list[str] = []

    base_points = 0
    rules = ruleset.active_rules()
    base_rule = next(
        (
            rule
            for rule in rules
            if isinstance(rule, BaseRateRule)
            and (rule.mcc_groups is None or group in rule.mcc_groups)
            and (rule.channels is None or spend.channel in rule.channels)
        ),
        None,
    )
    if base_rule is not None:
        base_points = spend.amount_minor * base_rule.points // base_rule.per_minor
    else:
        notes.append("no base_rate rule matches this purchase")

    for rule in rules:
        if isinstance(rule, BaseRateRule):
            if rule is base_rule:
                candidates.append(
                    _Candidate(
                        rule,
                        base_points,
                        f"{rule.points} per {rule.per_minor} minor units on "
                        f"{_money(ruleset, spend.amount_minor)} "
                        f"({group or 'unclassified'} MCC {spend.mcc or '-'}, {spend.channel}), "
                        "rounded down",
                        "proportional",
                    )
                )
        elif isinstance(rule, PartnerMultiplierRule):
            if partner in rule.partners and (
                rule.channels is None or spend.channel in rule.channels
            ):
                extra = base_points * (rule.multiplier_percent - 100) // 100
                candidates.append(
                    _Candidate(
                        rule,
                        extra,
                        f"co-brand {rule.multiplier_percent}% of base at partner {partner}: "
                        f"{extra} extra",
                        "proportional",
                    )
                )
        elif isinstance(rule, CampaignRule):
            if (
                rule.window.contains(moment.at)
                and _spend_matches(rule.match, spend, group, partner)
                and _audience_matches(ruleset, rule.audience, profile, state, day)
            ):
                if rule.extra_percent is not None:
                    points = base_points * rule.extra_percent // 100
                    why = f"campaign: +{rule.extra_percent}% of base points"
                    policy: ClawbackPolicy = "proportional"
                else:
                    points = rule.fixed_points or 0
                    why = "campaign: fixed bonus"
                    policy = "full_refund"
                candidates.append(_Candidate(rule, points, _describe(rule, why), policy))
        elif isinstance(rule, FirstPartnerPurchaseRule):
            if (
                partner in rule.partners
                and partner not in state.partners_seen
                and spend.amount_minor >= rule.min_amount_minor
            ):
                candidates.append(
                    _Candidate(
                        rule,
                        rule.points,
                        f"first purchase at partner {partner}",
                        "full_refund",
                    )
                )
        elif isinstance(rule, ReactivationRule):
            idle = _days_since_purchase(ruleset, profile, state, day)
            if (
                idle >= rule.dormant_days
                and spend.amount_minor >= rule.min_amount_minor
                and _audience_matches(ruleset, rule.audience, profile, state, day)
            ):
                candidates.append(
                    _Candidate(
                        rule,
                        rule.points,
                        f"welcome back: first purchase after {idle} days (>= {rule.dormant_days})",
                        "full_refund",
                    )
                )
        elif isinstance(rule, MilestoneRule):
            if rule.id not in state.milestones:
                value = next_count if rule.metric == "purchase_count" else next_spend
                if value >= rule.threshold:
                    reached.append(rule)
                    candidates.append(
                        _Candidate(rule, rule.points, _milestone_text(ruleset, rule), "milestone")
                    )
        elif isinstance(rule, StreakRule):
            if "purchase" in rule.counts and spend.amount_minor >= rule.min_amount_minor:
                award = _advance_streak(rule, streaks, day)
                if award is not None:
                    candidates.append(_Candidate(rule, rule.points, award, "full_refund"))
        elif isinstance(rule, ChallengeRule):
            award = _advance_challenge(rule, challenges, day, group, spend.amount_minor, notes)
            if award is not None:
                candidates.append(_Candidate(rule, rule.points, award, "full_refund"))

    lines, increments = _apply_caps(ruleset, candidates, state, day)

    for cand in candidates:
        badge = getattr(cand.rule, "badge", None)
        if badge is not None and badge not in state.badges and badge not in badges:
            badges.append(badge)
    milestones = dict(state.milestones)
    awarded = {line.rule_id: line.points for line in lines}
    for rule in reached:
        milestones[rule.id] = awarded[rule.id]

    next_state = replace(
        state,
        purchase_count=next_count,
        cumulative_spend_minor=next_spend,
        last_purchase_on=_later(state.last_purchase_on, day),
        last_activity_on=_later(state.last_activity_on, day),
        badges=state.badges | frozenset(badges),
        partners_seen=state.partners_seen | ({partner} if partner is not None else set()),
        milestones=milestones,
        streaks=streaks,
        challenges=challenges,
    ).with_counts(increments, day)

    return Evaluation(
        event_id=spend.event_id,
        customer_id=spend.customer_id,
        ruleset_version=ruleset.version,
        points=sum(line.points for line in lines),
        lines=lines,
        badges_awarded=tuple(badges),
        notes=tuple(notes),
        state=next_state,
        amount_minor=spend.amount_minor,
        currency=spend.currency,
        partner_id=partner,
    )


# --------------------------------------------------------------------------------- activity


def _evaluate_activity(
    ruleset: RuleSet,
    event: CheckIn | Share | ChallengeOptIn,
    profile: Profile,
    state: RuleState,
    now: datetime,
) -> Evaluation:
    moment = _moment(ruleset, event.occurred_at, now)
    day = moment.day
    notes = list(moment.notes)
    action = event.event_type
    candidates: list[_Candidate] = []
    streaks = dict(state.streaks)
    challenges = dict(state.challenges)
    badges: list[str] = []

    eligible = profile.status in ruleset.eligible_statuses
    if not eligible:
        notes.append(f"customer status {profile.status!r} does not earn")

    if isinstance(event, ChallengeOptIn):
        target = ruleset.rule(event.challenge_id)
        if isinstance(target, ChallengeRule) and target.enabled:
            period = _challenge_period(target, day)
            current = challenges.get(target.id)
            if current is None or current.period != period:
                current = ChallengeState(period=period)
            challenges[target.id] = replace(current, opted_in=True)
        else:
            notes.append(f"no enabled challenge {event.challenge_id!r} in this rule set")

    for rule in ruleset.active_rules() if eligible else []:
        if isinstance(rule, SocialRule) and rule.action == action:
            candidates.append(_Candidate(rule, rule.points, _describe(rule, action), "kept"))
        elif isinstance(rule, StreakRule) and action in rule.counts:
            award = _advance_streak(rule, streaks, day)
            if award is not None:
                candidates.append(_Candidate(rule, rule.points, award, "kept"))

    lines, increments = _apply_caps(ruleset, candidates, state, day)
    for cand in candidates:
        badge = getattr(cand.rule, "badge", None)
        if badge is not None and badge not in state.badges and badge not in badges:
            badges.append(badge)
    next_state = replace(
        state,
        last_activity_on=_later(state.last_activity_on, day),
        badges=state.badges | frozenset(badges),
        streaks=streaks,
        challenges=challenges,
    ).with_counts(increments, day)
    return Evaluation(
        event_id=event.event_id,
        customer_id=event.customer_id,
        ruleset_version=ruleset.version,
        points=sum(line.points for line in lines),
        lines=lines,
        badges_awarded=tuple(badges),
        notes=tuple(notes),
        state=next_state,
    )


# ---------------------------------------------------------------------------- rule helpers


def _later(current: date | None, day: date) -> date:
    return day if current is None else max(current, day)


def _describe(rule: Rule, why: str) -> str:
    return f"{why} ({rule.description})" if rule.description else why


def _milestone_text(ruleset: RuleSet, rule: MilestoneRule) -> str:
    if rule.metric == "purchase_count":
        what = f"purchase number {rule.threshold}"
    else:
        what = f"cumulative spend of {_money(ruleset, rule.threshold)}"
    badge = f", badge {rule.badge}" if rule.badge else ""
    return f"milestone reached: {what}{badge}"


def _period_index(period: str, day: date) -> int:
    # date(1, 1, 1) is a Monday, so (ordinal - 1) // 7 numbers ISO weeks (Monday to Sunday).
    return day.toordinal() if period == "day" else (day.toordinal() - 1) // 7


def _advance_streak(rule: StreakRule, streaks: dict[str, StreakState], day: date) -> str | None:
    """Count this period in the streak (mutating the local copy); the award text, if any."""
    index = _period_index(rule.period, day)
    current = streaks.get(rule.id)
    if current is not None and index <= current.last_period:
        return None  # already counted this period, or a late event: the streak does not move
    if current is not None and index - current.last_period <= 1 + rule.grace_periods:
        length = current.length + 1
    else:
        length = 1
    streaks[rule.id] = StreakState(last_period=index, length=length)
    hit = length % rule.length == 0 if rule.repeat else length == rule.length
    if not hit:
        return None
    grace = f", up to {rule.grace_periods} missed allowed" if rule.grace_periods else ""
    return f"streak: {length} consecutive {rule.period}s{grace}"


def _challenge_period(rule: ChallengeRule, day: date) -> str:
    if rule.period == "month":
        return month_of(day)
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _advance_challenge(
    rule: ChallengeRule,
    challenges: dict[str, ChallengeState],
    day: date,
    group: str | None,
    amount_minor: int,
    notes: list[str],
) -> str | None:
    period = _challenge_period(rule, day)
    current = challenges.get(rule.id)
    if current is None or current.period != period:
        current = ChallengeState(period=period)
    if current.completed or group is None or amount_minor < rule.min_amount_minor:
        return None
    if rule.categories is not None and group not in rule.categories:
        return None
    if rule.requires_opt_in and not current.opted_in:
        notes.append(f"challenge {rule.id} not joined this period; purchase not counted")
        return None
    categories = current.categories | {group}
    completed = len(categories) >= rule.target
    challenges[rule.id] = replace(current, categories=categories, completed=completed)
    if not completed:
        return None
    names = ", ".join(sorted(categories))
    return f"challenge: {rule.target} different categories in {period} ({names})"


# -------------------------------------------------------------------------------------- caps


def _room(cap: Cap | None, name: str, state: RuleState, day: date) -> tuple[int | None, str]:
    """Points still allowed under ``cap`` for counter ``name``, and which limit binds."""
    if cap is None:
        return None, ""
    limits: list[tuple[int, str]] = []
    if cap.per_transaction is not None:
        limits.append((cap.per_transaction, f"{cap.per_transaction} per transaction"))
    if cap.per_day is not None:
        used = state.counter(day_key(day, name)) if state.is_day_kept(day) else cap.per_day
        limits.append((max(0, cap.per_day - used), f"{cap.per_day} per day"))
    if cap.per_month is not None:
        used = state.counter(month_key(day, name)) if state.is_month_kept(day) else cap.per_month
        limits.append((max(0, cap.per_month - used), f"{cap.per_month} per month"))
    room, label = min(limits)
    return room, label


def _apply_caps(
    ruleset: RuleSet, candidates: Sequence[_Candidate], state: RuleState, day: date
) -> tuple[tuple[Line, ...], dict[str, int]]:
    increments: dict[str, int] = {}
    lines: list[Line] = []
    total_room, total_label = _room(ruleset.caps, _TOTAL, state, day)
    for cand in candidates:
        points = cand.points
        explanation = cand.explanation
        rule_room, rule_label = _room(cand.rule.cap, f"rule:{cand.rule.id}", state, day)
        if rule_room is not None and points > rule_room:
            points = rule_room
            explanation += f"; capped at {rule_label} for this rule"
        if total_room is not None:
            if points > total_room:
                points = total_room
                explanation += f"; capped at {total_label} overall"
            total_room -= points
        if cand.rule.cap is not None:
            name = f"rule:{cand.rule.id}"
            increments[day_key(day, name)] = increments.get(day_key(day, name), 0) + points
            increments[month_key(day, name)] = increments.get(month_key(day, name), 0) + points
        lines.append(Line(cand.rule.id, cand.rule.kind, points, explanation, cand.clawback))
    total = sum(line.points for line in lines)
    increments[day_key(day, _TOTAL)] = total
    increments[month_key(day, _TOTAL)] = total
    return tuple(lines), increments
