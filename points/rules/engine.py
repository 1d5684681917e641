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
from datetime import UTC, date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic_core import TzInfo

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
    DAY_COUNTERS_KEPT,
    MONTH_COUNTERS_KEPT,
    NO_SETTLED,
    ChallengeState,
    RuleState,
    StreakState,
    _month_index,
    copy_of,
    month_of,
    pruned,
    slot_setter,
)

__all__ = [
    "UNKNOWN_JOINED_AT",
    "ClawbackPolicy",
    "EarningEvent",
    "EarningRecord",
    "Evaluation",
    "Line",
    "Profile",
    "PurchaseFacts",
    "evaluate",
    "preview",
]

ClawbackPolicy = Literal["proportional", "full_refund", "milestone", "kept"]
#: The join date of a customer whose profile has not arrived (a purchase can be consumed before
#: its bank.customers onboarding): :meth:`Profile.unknown`. No audience or reactivation counts
#: days from it: a customer nobody knows is neither new, nor dormant, nor coming back.
UNKNOWN_JOINED_AT: Final = datetime(1970, 1, 1, tzinfo=UTC)
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
    def unknown(cls, customer_id: str) -> Profile:
        """A customer whose profile has not arrived: no segment, age or join date."""
        return cls(customer_id, "unknown", UNKNOWN_JOINED_AT)

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
class PurchaseFacts:
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
    def from_purchase(cls, event: Purchase) -> PurchaseFacts:
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
    def from_partner_purchase(cls, event: PartnerPurchase) -> PurchaseFacts:
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
        # Once per purchase: each line's dict is built inline (Line.to_json's shape), and an
        # empty ``clawed`` (every record until a refund) skips the sort.
        clawed = self.clawed
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "ruleset_version": self.ruleset_version,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "partner_id": self.partner_id,
            "lines": [
                {
                    "rule_id": line.rule_id,
                    "kind": line.kind,
                    "points": line.points,
                    "explanation": line.explanation,
                    "clawback": line.clawback,
                }
                for line in self.lines
            ],
            "refunded_minor": self.refunded_minor,
            "clawed": dict(sorted(clawed.items())) if clawed else {},
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
            lines=tuple(_line_in(line) for line in data["lines"]),
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
    #: what decided without this event because it came too late (a streak rule's id: the
    #: period is older than the streak remembers; "caps": its day's or month's counters are
    #: gone); the earning service records it as a refusal (docs/rules.md, "Late events")
    too_late_for: tuple[str, ...] = ()

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of the rules that fired, in order (a line capped to 0 still fired)."""
        return tuple(line.rule_id for line in self.lines)

    def record(self) -> EarningRecord:
        """The record a later refund of this event needs (see points.rules.clawback)."""
        # Made for every purchase: the instance dict is filled at once (see _evaluation).
        record = _new(EarningRecord)
        _set_dict(
            record,
            "__dict__",
            {
                "event_id": self.event_id,
                "customer_id": self.customer_id,
                "ruleset_version": self.ruleset_version,
                "amount_minor": self.amount_minor,
                "currency": self.currency or "",
                "partner_id": self.partner_id,
                "lines": self.lines,
                "refunded_minor": 0,
                "clawed": {},
            },
        )
        return record

    def explain(self) -> str:
        """A few readable lines: total, then each rule's points and reason, then notes."""
        out = [f"{self.points} points (rule set {self.ruleset_version})"]
        out += [f"  {line.rule_id}: {line.points} - {line.explanation}" for line in self.lines]
        out += [f"  badge: {badge}" for badge in self.badges_awarded]
        out += [f"  note: {note}" for note in self.notes]
        return "\n".join(out)


_POLICIES = frozenset({"proportional", "full_refund", "milestone", "kept"})


def _line_in(data: Mapping[str, Any]) -> Line:
    """``Line.from_json(data)``: the stored shape (str fields, a plain int) checked inline."""
    try:
        rule_id = data["rule_id"]
        kind = data["kind"]
        policy = data["clawback"]
        points = data["points"]
        explanation = data["explanation"]
    except (KeyError, TypeError):
        return Line.from_json(data)  # raises what it always raised
    if (
        type(rule_id) is str
        and type(kind) is str
        and type(policy) is str
        and policy in _POLICIES
        and type(points) is int
        and points >= 0
        and type(explanation) is str
    ):
        return _line(rule_id, kind, points, explanation, policy)  # type: ignore[arg-type]
    return Line.from_json(data)


# ------------------------------------------------------------------------------- public API


def evaluate(
    ruleset: RuleSet, event: EarningEvent, profile: Profile, state: RuleState, *, now: datetime
) -> Evaluation:
    """Award points for one event. Pure: same inputs, same result; time is the event's.

    ``now`` is the processing time; it only bounds an event that claims to be from the future.
    Refunds and reversals are not earning events: use :func:`points.rules.clawback.clawback`.
    """
    if isinstance(event, Purchase):
        # The hot path: a purchase is read field by field instead of through a PurchaseFacts
        # (a frozen dataclass with checks, built and dropped per event). A purchase that would
        # fail its checks (the event model already enforces them) still gets its error.
        amount = event.amount_minor
        occurred_at = event.occurred_at
        if type(amount) is not int or amount <= 0 or occurred_at.tzinfo is None:
            PurchaseFacts.from_purchase(event)
        return _spend(
            plan_of(ruleset),
            amount,
            event.currency,
            event.mcc,
            event.merchant_id,
            event.channel,
            occurred_at,
            event.partner_id,
            event.event_id,
            event.customer_id,
            profile,
            state,
            now,
        )
    if isinstance(event, PartnerPurchase):
        facts = PurchaseFacts.from_partner_purchase(event)
        return _evaluate_spend(ruleset, facts, profile, state, now)
    if isinstance(event, CheckIn | Share | ChallengeOptIn):
        return _evaluate_activity(ruleset, event, profile, state, now)
    raise NotAnEarningEvent(
        f"{type(event).__name__} does not earn points; refunds and reversals go to clawback()"
    )


def preview(
    ruleset: RuleSet, spend: PurchaseFacts, profile: Profile, state: RuleState, *, now: datetime
) -> Evaluation:
    """ "If I spend X at merchant Y now, what do I earn and why": the real path, nothing kept."""
    return _evaluate_spend(ruleset, spend, profile, state, now)


# ------------------------------------------------------------------------------ the context
#
# Everything below reads the rule set through its compiled plan (points.rules.plan): see
# there why. The order of the steps, and every text and number, is the documented one above.
#
# This is the per-event path of the earning worker (tens of thousands of events a second), so
# it avoids work that does not depend on the event: what a calendar day implies (ISO text,
# counter keys, week and month numbers) is worked out once per day (_Day), results are built
# without the frozen dataclasses' per-field __init__ (_line, _evaluation), and values used by
# several rules (days since joining or since the last purchase) are computed once, when first
# needed. Every result is the same as the plain reading of the rules.

#: a candidate line: (position of its rule in the file, the rule, points, why, clawback policy)
_Candidate = tuple[int, Head, int, str, ClawbackPolicy]
_FUTURE_NOTE = "occurred_at is later than now; evaluated as of now"
_CACHE_MAX = 4096
_new = object.__new__


class _Day:
    """What the rules need to know about one calendar day (in the rule set's zone)."""

    __slots__ = (
        "day",
        "day_prefix",
        "day_total",
        "iso_week",
        "month",
        "month_index",
        "month_prefix",
        "month_total",
        "ordinal",
        "rule_keys",
        "week",
        "year",
    )

    def __init__(self, day: date) -> None:
        iso = day.isoformat()
        self.day = day
        self.year = day.year
        self.ordinal = day.toordinal()
        # date(1, 1, 1) is a Monday, so (ordinal - 1) // 7 numbers ISO weeks (Monday to Sunday).
        self.week = (self.ordinal - 1) // 7
        self.month_index = _month_index(day)
        # Counter keys are "d:<YYYY-MM-DD>:<name>" and "m:<YYYY-MM>:<name>" (see state.day_key).
        self.day_prefix = f"d:{iso}:"
        self.month_prefix = f"m:{iso[:7]}:"
        self.day_total = self.day_prefix + _TOTAL
        self.month_total = self.month_prefix + _TOTAL
        # Challenge periods: "YYYY-MM" and "YYYY-Www".
        self.month = month_of(day)
        year, week, _ = day.isocalendar()
        self.iso_week = f"{year:04d}-W{week:02d}"
        #: a capped rule's counter name -> its (day key, month key) for this day: one string
        #: object per key shared by every state, instead of two new strings per event
        self.rule_keys: dict[str, tuple[str, str]] = {}

    def keys_of(self, counter: str) -> tuple[str, str]:
        keys = self.rule_keys.get(counter)
        if keys is None:
            keys = self.rule_keys[counter] = (
                self.day_prefix + counter,
                self.month_prefix + counter,
            )
        return keys


_DAYS: dict[date, _Day] = {}


def _day(day: date) -> _Day:
    found = _DAYS.get(day)
    if found is None:
        found = _Day(day)
        if len(_DAYS) >= _CACHE_MAX:
            _DAYS.clear()
        _DAYS[day] = found
    return found


#: a state's latest day -> (the day a counted day must be after, the month index a counted
#: month must be after): RuleState.is_day_kept and is_month_kept, worked out once per day.
_KEPT: dict[date, tuple[date, int]] = {}


def _kept_after(latest_day: date) -> tuple[date, int]:
    found = _KEPT.get(latest_day)
    if found is None:
        found = (
            latest_day - timedelta(days=DAY_COUNTERS_KEPT),
            _month_index(latest_day) - MONTH_COUNTERS_KEPT,
        )
        if len(_KEPT) >= _CACHE_MAX:
            _KEPT.clear()
        _KEPT[latest_day] = found
    return found


#: time zone types whose utcoffset() is never None (so astimezone(UTC) is exact)
_OFFSET_ZONES = frozenset({timezone, ZoneInfo, TzInfo})


def _moment(
    zone: ZoneInfo, occurred_at: datetime, now: datetime
) -> tuple[datetime, datetime, date, list[str]]:
    """The moment an event counts at (never later than ``now``), that moment in UTC, its day
    in ``zone``, and notes.

    Comparing datetimes of two different zones, and converting from the event model's zone,
    are slow; with both instants in UTC (exactly equivalent for zones that always give an
    offset) the comparison is field by field, and the day comes from the UTC instant.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    occurred_zone = occurred_at.tzinfo
    now_zone = now.tzinfo
    if occurred_zone is now_zone or not (
        type(occurred_zone) in _OFFSET_ZONES and type(now_zone) in _OFFSET_ZONES
    ):
        future = occurred_at > now  # the same zone object compares wall-clock fields
        occurred_utc = None
    else:
        occurred_utc = occurred_at.astimezone(UTC)
        future = occurred_utc > now.astimezone(UTC)
    if future:
        at, notes = now, [_FUTURE_NOTE]
        at_utc = now.astimezone(UTC)
    else:
        at, notes = occurred_at, []
        at_utc = occurred_at.astimezone(UTC) if occurred_utc is None else occurred_utc
    # at.astimezone(zone) returns ``at`` itself when already in ``zone``; otherwise it is the
    # UTC instant's conversion.
    day = at.date() if at.tzinfo is zone else at_utc.astimezone(zone).date()
    return at, at_utc, day, notes


def _days_since_joining(plan: RulePlan, profile: Profile, today: _Day) -> int:
    return today.ordinal - plan.joined_on(profile.joined_at).toordinal()


def _days_since_purchase(plan: RulePlan, profile: Profile, state: RuleState, today: _Day) -> int:
    reference = state.last_purchase_on
    if reference is None:
        if profile.joined_at == UNKNOWN_JOINED_AT:
            return 0  # never bought, joined who knows when: not dormant, not coming back
        reference = plan.joined_on(profile.joined_at)
    return max(0, today.ordinal - reference.toordinal())


def _audience_matches(
    plan: RulePlan,
    audience: AudiencePlan,
    profile: Profile,
    state: RuleState,
    today: _Day,
    idle: int | None,
) -> bool:
    """Whether the customer is in ``audience``; ``idle``: days since purchase if known."""
    if audience.segments is not None and profile.segment not in audience.segments:
        return False
    if audience.statuses is not None and profile.status not in audience.statuses:
        return False
    age = None if profile.birth_year is None else today.year - profile.birth_year
    if audience.age_below is not None and (age is None or age >= audience.age_below):
        return False
    if audience.age_at_least is not None and (age is None or age < audience.age_at_least):
        return False
    if (
        audience.joined_within_days is not None
        and _days_since_joining(plan, profile, today) >= audience.joined_within_days
    ):
        return False
    if audience.dormant_for_days is None:
        return True
    if idle is None:
        idle = _days_since_purchase(plan, profile, state, today)
    return idle >= audience.dormant_for_days


def _later(current: date | None, day: date) -> date:
    return day if current is None else max(current, day)


def _refrozen(updated: dict[str, Any], before: Mapping[str, Any]) -> Mapping[str, Any]:
    """A state mapping after the engine set some keys in ``updated`` (a copy of ``before``).

    Setting an existing key keeps the (sorted) order, so only new keys call for a sort.
    """
    if len(updated) == len(before):
        return MappingProxyType(updated)
    return MappingProxyType(dict(sorted(updated.items())))


# Results are frozen dataclasses; their generated __init__ sets each field through
# object.__setattr__, about twice the cost of filling the slots (Line) or the instance dict
# (Evaluation, EarningRecord) directly, and a few of them are made for every event.
_set_line_rule_id = slot_setter(Line, "rule_id")
_set_line_kind = slot_setter(Line, "kind")
_set_line_points = slot_setter(Line, "points")
_set_line_explanation = slot_setter(Line, "explanation")
_set_line_clawback = slot_setter(Line, "clawback")
_set_dict = object.__setattr__


def _line(rule_id: str, kind: str, points: int, explanation: str, policy: ClawbackPolicy) -> Line:
    """``Line(rule_id, kind, points, explanation, policy)``, built faster."""
    line = _new(Line)
    _set_line_rule_id(line, rule_id)
    _set_line_kind(line, kind)
    _set_line_points(line, points)
    _set_line_explanation(line, explanation)
    _set_line_clawback(line, policy)
    return line


def _evaluation(
    event_id: str,
    customer_id: str,
    ruleset_version: str,
    points: int,
    lines: tuple[Line, ...],
    badges_awarded: tuple[str, ...],
    notes: tuple[str, ...],
    state: RuleState,
    amount_minor: int = 0,
    currency: str | None = None,
    partner_id: str | None = None,
    too_late_for: tuple[str, ...] = (),
) -> Evaluation:
    """``Evaluation(...)`` with the same fields, built faster."""
    evaluation = _new(Evaluation)
    _set_dict(
        evaluation,
        "__dict__",
        {
            "event_id": event_id,
            "customer_id": customer_id,
            "ruleset_version": ruleset_version,
            "points": points,
            "lines": lines,
            "badges_awarded": badges_awarded,
            "notes": notes,
            "state": state,
            "amount_minor": amount_minor,
            "currency": currency,
            "partner_id": partner_id,
            "too_late_for": too_late_for,
        },
    )
    return evaluation


# --------------------------------------------------------------------------------- spending


def _evaluate_spend(
    ruleset: RuleSet, spend: PurchaseFacts, profile: Profile, state: RuleState, now: datetime
) -> Evaluation:
    return _spend(
        plan_of(ruleset),
        spend.amount_minor,
        spend.currency,
        spend.mcc,
        spend.merchant_id,
        spend.channel,
        spend.occurred_at,
        spend.partner_id,
        spend.event_id,
        spend.customer_id,
        profile,
        state,
        now,
    )


def _spend(
    plan: RulePlan,
    amount: int,
    currency: str,
    mcc: str | None,
    merchant_id: str,
    channel: str,
    occurred_at: datetime,
    partner: str | None,
    event_id: str,
    customer_id: str,
    profile: Profile,
    state: RuleState,
    now: datetime,
) -> Evaluation:
    """The purchase path of :func:`evaluate` (a checked PurchaseFacts's fields, one by one)."""
    _, at_utc, day, notes = _moment(plan.zone, occurred_at, now)
    group = plan.mcc_group(mcc)
    if partner is None:
        partner = plan.merchant_partner.get(merchant_id)

    if profile.status not in plan.eligible_statuses:
        return _evaluation(
            event_id,
            customer_id,
            plan.version,
            0,
            (),
            (),
            (*notes, f"customer status {profile.status!r} does not earn"),
            state,
            amount,
            currency,
            partner,
        )
    if currency != plan.currency:
        touched = replace(state, last_activity_on=_later(state.last_activity_on, day))
        return _evaluation(
            event_id,
            customer_id,
            plan.version,
            0,
            (),
            (),
            (
                *notes,
                f"currency {currency} does not earn (rule set earns on {plan.currency})",
            ),
            touched,
            amount,
            currency,
            partner,
        )

    today = _DAYS.get(day) or _day(day)
    route = plan.route(group, channel, partner)
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
                f"({group or 'unclassified'} MCC {mcc or '-'}, {channel}), rounded down",
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

    # Days since the last purchase: reactivations always need it, dormant audiences may.
    idle = _days_since_purchase(plan, profile, state, today) if plan.reactivations else None

    for campaign in route.campaigns:
        if (
            campaign.starts_at <= at_utc < campaign.ends_at  # windows are compiled to UTC
            and amount >= campaign.min_amount_minor
            and (
                campaign.audience is None
                or _audience_matches(plan, campaign.audience, profile, state, today, idle)
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

    partners_seen = state.partners_seen
    for first, explanation in route.first_partner:
        if partner not in partners_seen and amount >= first.min_amount_minor:
            candidates.append(
                (first.head.index, first.head, first.points, explanation, "full_refund")
            )

    if idle is not None:
        for comeback in plan.reactivations:
            if (
                idle >= comeback.dormant_days
                and amount >= comeback.min_amount_minor
                and (
                    comeback.audience is None
                    or _audience_matches(plan, comeback.audience, profile, state, today, idle)
                )
            ):
                candidates.append(
                    (
                        comeback.head.index,
                        comeback.head,
                        comeback.points,
                        f"welcome back: first purchase after {idle} days "
                        f"(>= {comeback.dormant_days})",
                        "full_refund",
                    )
                )

    reached: list[str] = []
    milestones = state.milestones
    for milestone in plan.milestones:
        if milestone.head.id not in milestones:
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
    too_late: list[str] | None = None  # made when an event is too late for something
    for streak in plan.purchase_streaks:
        if amount >= streak.min_amount_minor:
            current = state.streaks.get(streak.head.id)
            if current is not None and current.last_period == (
                today.ordinal if streak.daily else today.week
            ):
                continue  # counted this period already: what _advance_streak would say
            moved, award = _advance_streak(streak, state.streaks, today)
            if moved is _TOO_LATE:
                too_late = [*(too_late or ()), streak.head.id]
            elif moved is not None:
                if streaks is None:
                    streaks = copy_of(state.streaks)
                streaks[streak.head.id] = moved
            if award is not None:
                candidates.append(
                    (streak.head.index, streak.head, streak.points, award, "full_refund")
                )

    challenges: dict[str, ChallengeState] | None = None
    for challenge in route.challenges:
        progress, award = _advance_challenge(
            challenge, state.challenges, today, group, amount, notes
        )
        if progress is not None:
            if challenges is None:
                challenges = copy_of(state.challenges)
            challenges[challenge.head.id] = progress
        if award is not None:
            candidates.append(
                (challenge.head.index, challenge.head, challenge.points, award, "full_refund")
            )

    # Candidates were gathered kind by kind; lines and caps go in file order. Each rule gives
    # at most one candidate, so positions are unique and a plain tuple sort orders by them.
    candidates.sort()
    lines, total, counters, latest_day, caps_gone = _apply_caps(plan, candidates, state, today)
    if caps_gone:
        too_late = [*(too_late or ()), _CAPS]

    milestone_events = state.milestone_events
    if reached:
        updated = copy_of(milestones)
        payers = copy_of(milestone_events)
        awarded = {line.rule_id: line.points for line in lines}
        for rule_id in reached:
            updated[rule_id] = awarded[rule_id]
            payers[rule_id] = event_id  # a refund that undoes it takes it back from here
        milestones = _refrozen(updated, state.milestones)
        milestone_events = _refrozen(payers, state.milestone_events)
    if partner is not None and partner not in partners_seen:
        partners_seen = partners_seen | {partner}
    badges = _new_badges(candidates, state)

    last_purchase_on = state.last_purchase_on
    last_activity_on = state.last_activity_on
    next_state = RuleState._trusted(
        next_count,
        next_spend,
        day if last_purchase_on is None else max(last_purchase_on, day),
        day if last_activity_on is None else max(last_activity_on, day),
        latest_day,
        state.badges | frozenset(badges) if badges else state.badges,
        partners_seen,
        milestones,
        milestone_events,
        state.streaks if streaks is None else _refrozen(streaks, state.streaks),
        state.challenges if challenges is None else _refrozen(challenges, state.challenges),
        counters,
    )
    return _evaluation(
        event_id,
        customer_id,
        plan.version,
        total,
        lines,
        tuple(badges),
        tuple(notes),
        next_state,
        amount,
        currency,
        partner,
        tuple(too_late) if too_late else (),
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
    _, _, day, notes = _moment(plan.zone, event.occurred_at, now)
    today = _DAYS.get(day) or _day(day)
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
            period = today.month if target.period == "month" else today.iso_week
            challenges = copy_of(state.challenges)
            current = challenges.get(target.id)
            if current is None or current.period != period:
                current = ChallengeState(period=period)
            challenges[target.id] = replace(current, opted_in=True)
        else:
            notes.append(f"no enabled challenge {event.challenge_id!r} in this rule set")

    too_late: list[str] = []
    for rule in plan.activity.get(action, ()) if eligible else ():
        if isinstance(rule, SocialPlan):
            candidates.append((rule.head.index, rule.head, rule.points, rule.explanation, "kept"))
        else:
            moved, award = _advance_streak(rule, state.streaks, today)
            if moved is _TOO_LATE:
                too_late.append(rule.head.id)
            elif moved is not None:
                if streaks is None:
                    streaks = copy_of(state.streaks)
                streaks[rule.head.id] = moved
            if award is not None:
                candidates.append((rule.head.index, rule.head, rule.points, award, "kept"))

    lines, total, counters, latest_day, caps_gone = _apply_caps(plan, candidates, state, today)
    if caps_gone:
        too_late.append(_CAPS)
    badges = _new_badges(candidates, state)
    next_state = RuleState._trusted(
        state.purchase_count,
        state.cumulative_spend_minor,
        state.last_purchase_on,
        _later(state.last_activity_on, day),
        latest_day,
        state.badges | frozenset(badges) if badges else state.badges,
        state.partners_seen,
        state.milestones,
        state.milestone_events,
        state.streaks if streaks is None else _refrozen(streaks, state.streaks),
        state.challenges if challenges is None else _refrozen(challenges, state.challenges),
        counters,
    )
    return _evaluation(
        event.event_id,
        event.customer_id,
        plan.version,
        total,
        lines,
        tuple(badges),
        tuple(notes),
        next_state,
        too_late_for=tuple(too_late) if too_late else (),
    )


# ---------------------------------------------------------------------------- rule helpers


#: What _advance_streak returns for a period older than the streak remembers: it is not
#: counted (and the earning service records why).
_TOO_LATE: Final = StreakState(-1, 0)
#: Evaluation.too_late_for's name for "this period's cap counters are no longer kept".
_CAPS: Final = "caps"


def _advance_streak(
    rule: StreakPlan, streaks: Mapping[str, StreakState], today: _Day
) -> tuple[StreakState | None, str | None]:
    """Count this period in the streak: its new progress (None: unchanged; ``_TOO_LATE``: too
    old to count) and the award text when the bonuses the streak deserves outgrow those paid.

    The streak is decided by event time: the bonuses deserved are a function of the set of
    active periods (walked in order, see ``_walk``), so a period that arrives late, within
    what the state keeps (StreakState.recent), gives the same bonuses as in-order arrival.
    Adding a period never lowers what is deserved (a run only grows or two runs join), so
    paying the difference pays every bonus once and none twice.
    """
    index = today.ordinal if rule.daily else today.week
    current = streaks.get(rule.head.id)
    if current is None:
        recent: tuple[int, ...] = (index,)
        settled = NO_SETTLED
        paid = 0
    else:
        settled = current.settled
        if index in current.recent or index == settled[0]:
            return None, None  # counted this period already
        if index < settled[0]:
            return _TOO_LATE, None  # folded into `settled`: its place in the runs is gone
        recent = tuple(sorted((*current.recent, index)))
        paid = current.paid
    oldest_kept = recent[-1] - rule.window
    if recent[0] < oldest_kept:  # fold periods the window no longer needs into `settled`
        folded = 0
        while recent[folded] < oldest_kept:
            folded += 1
        last, length, deserved, _ = _walk(rule, recent[:folded], settled)
        settled = (last, length, settled[2] + deserved)
        recent = recent[folded:]
    last, length, deserved, hit_length = _walk(rule, recent, settled)
    deserved += settled[2]
    if not rule.repeat:
        deserved = min(deserved, 1)
    award = None
    if deserved > paid:
        paid = deserved
        award = f"streak: {hit_length} consecutive {rule.period}s{rule.grace_text}"
    return StreakState(last, length, recent, settled, paid), award


def _walk(
    rule: StreakPlan, periods: Sequence[int], start: tuple[int, int, int]
) -> tuple[int, int, int, int]:
    """Run the streak over ``periods`` (increasing) from ``start`` (a settled triple): the last
    period, the run length there, the bonuses the run steps deserved, the last bonus's length.

    A period within ``1 + grace_periods`` of the previous one extends the run (missed periods
    do not count toward its length); otherwise a new run starts. With ``repeat`` every
    multiple of ``length`` deserves a bonus; without, reaching ``length`` does (once in all).
    """
    last, length, _ = start
    step = 1 + rule.grace_periods
    goal = rule.length
    deserved = hit_length = 0
    for period in periods:
        length = length + 1 if length and period - last <= step else 1
        last = period
        if (length % goal == 0) if rule.repeat else (length == goal):
            deserved += 1
            hit_length = length
    return last, length, deserved, hit_length


def _advance_challenge(
    rule: ChallengePlan,
    challenges: Mapping[str, ChallengeState],
    today: _Day,
    group: str | None,
    amount_minor: int,
    notes: list[str],
) -> tuple[ChallengeState | None, str | None]:
    """Count the purchase's category: the new progress (None: unchanged) and award text."""
    # The route only lists challenges the purchase's MCC group can count for.
    period = today.month if rule.monthly else today.iso_week
    current = challenges.get(rule.head.id)
    if current is None or current.period != period:
        # No progress in this period yet: what a fresh ChallengeState(period) would hold,
        # without making one for the (common) purchases that end up not counting.
        opted_in = completed = False
        categories: frozenset[str] = frozenset()
    else:
        opted_in = current.opted_in
        completed = current.completed
        categories = current.categories
    if completed or group is None or amount_minor < rule.min_amount_minor:
        return None, None
    if rule.categories is not None and group not in rule.categories:
        return None, None
    if rule.requires_opt_in and not opted_in:
        notes.append(rule.not_joined_note)
        return None, None
    categories = categories | {group}
    completed = len(categories) >= rule.target
    progress = ChallengeState(period, opted_in, categories, completed)
    if not completed:
        return progress, None
    names = ", ".join(sorted(categories))
    return progress, f"challenge: {rule.target} different categories in {period} ({names})"


# -------------------------------------------------------------------------------------- caps


def _room(
    cap: CapPlan, counters: Mapping[str, int], day_key: str | None, month_key: str | None
) -> tuple[int, str]:
    """Points still allowed under ``cap`` (its counters at these keys), and which limit binds.

    A key is None when that period's counters are no longer kept (a late event): its cap
    counts as used up. Of equal rooms the label that sorts first binds (min over the pairs).
    """
    room: tuple[int, str] | None = None
    limit = cap.per_transaction
    if limit is not None:
        room = (limit, cap.transaction_label)
    limit = cap.per_day
    if limit is not None:
        left = 0 if day_key is None else limit - counters.get(day_key, 0)
        pair = (left if left > 0 else 0, cap.day_label)
        if room is None or pair < room:
            room = pair
    limit = cap.per_month
    if limit is not None:
        left = 0 if month_key is None else limit - counters.get(month_key, 0)
        pair = (left if left > 0 else 0, cap.month_label)
        if room is None or pair < room:
            room = pair
    if room is None:
        raise ValueError("min() arg is an empty sequence")  # what min([]) said: a cap of none
    return room


def _apply_caps(
    plan: RulePlan, candidates: Sequence[_Candidate], state: RuleState, today: _Day
) -> tuple[tuple[Line, ...], int, Mapping[str, int], date, bool]:
    """The lines after the caps, their total, the state's next counters and latest day, and
    whether a cap was read for a day or month whose counters are no longer kept (too late).

    The counters are advanced as ``advance_counters`` does with the points each capped rule
    and the total earned (zeros add nothing), added straight into a copy of the counters.
    """
    counters = state.counters
    latest_day = state.latest_day
    if latest_day is None:
        kept_day = kept_month = True
    else:
        after_day, after_month = _KEPT.get(latest_day) or _kept_after(latest_day)
        kept_day = today.day > after_day
        kept_month = today.month_index > after_month
    updated = copy_of(counters)  # rooms read ``counters``, points go into ``updated``
    added = False
    lines: list[Line] = []
    total_room: int | None = None
    total_label = ""
    if plan.caps is not None:
        total_room, total_label = _room(
            plan.caps,
            counters,
            today.day_total if kept_day else None,
            today.month_total if kept_month else None,
        )
    total = 0
    gone = not (kept_day and kept_month) and (
        plan.caps is not None or any(candidate[1].cap is not None for candidate in candidates)
    )
    for _, head, points, explanation, policy in candidates:
        cap = head.cap
        if cap is not None:
            day_key, month_key = today.rule_keys.get(head.counter) or today.keys_of(head.counter)
            rule_room, rule_label = _room(
                cap, counters, day_key if kept_day else None, month_key if kept_month else None
            )
            if points > rule_room:
                points = rule_room
                explanation += f"; capped at {rule_label} for this rule"
        if total_room is not None:
            if points > total_room:
                points = total_room
                explanation += f"; capped at {total_label} overall"
            total_room -= points
        if cap is not None and points:
            # Rule ids are unique, so each rule's counters get at most this one amount.
            if day_key in updated:
                updated[day_key] += points
            else:
                updated[day_key] = points
                added = True
            if month_key in updated:
                updated[month_key] += points
            else:
                updated[month_key] = points
                added = True
        lines.append(_line(head.id, head.kind, points, explanation, policy))
        total += points
    if total:
        for key in (today.day_total, today.month_total):
            if key in updated:
                updated[key] += total
            else:
                updated[key] = total
                added = True
    day = today.day
    next_counters, next_latest = pruned(
        updated, added, day if latest_day is None else max(latest_day, day)
    )
    return tuple(lines), total, next_counters, next_latest, gone
