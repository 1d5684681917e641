"""A rule set compiled once for the hot path of :func:`points.rules.evaluate`.

``evaluate`` runs once per card transaction. Reading the pydantic rule models there was most
of its cost: private attributes and missing ones (``getattr(rule, "badge", None)`` on a rule
kind without badges) go through ``BaseModel.__getattr__``, every rule was tried against every
purchase with a chain of ``isinstance`` tests, and the same labels, explanations and window
comparisons were rebuilt per event. A :class:`RulePlan` holds the same rules as plain slotted
objects, with everything that does not depend on the event worked out in advance:

- enabled rules only, split by kind, each keeping its position in the file (lines are listed,
  and caps applied, in file order);
- what a purchase's MCC group, channel and partner alone decide (which base rate fires, which
  co-brand multipliers and campaigns can match, which first-partner bonuses and challenges
  apply) is resolved once per (group, channel, partner) into a :class:`Route`;
- campaign windows as UTC datetimes (compared without time-zone arithmetic), audiences and
  match lists as frozensets, cap labels and static explanations as ready strings.

Plans are cached per rule set object (rule sets are frozen after validation) and never change
what the rules decide: the engine's results are the same as reading the models directly.

Why one module of near 600 lines: it is one step, compiling. Each plan record below mirrors a
rule model of :mod:`points.rules.ruleset` and is filled in one place (``RulePlan._compile``);
kept together, a new rule kind or field is one edit here, not one per file. What runs per
event lives elsewhere (:mod:`points.rules.engine` and the modules it names).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

from points.rules.behaviour import LifecycleThresholds
from points.rules.days import Calendar
from points.rules.holdout import HoldoutSplit
from points.rules.memo import MEMO_LIMIT
from points.rules.ruleset import (
    Audience,
    BaseRateRule,
    Between,
    CampaignRule,
    Cap,
    ChallengeRule,
    FirstPartnerPurchaseRule,
    MilestoneRule,
    PartnerMultiplierRule,
    ReactivationRule,
    RuleSet,
    SocialRule,
    StreakRule,
)

__all__ = ["CapPlan", "Route", "RulePlan", "plan_of"]

Policy = Literal["proportional", "full_refund", "milestone", "kept"]


def _set(items: list[str] | None) -> frozenset[str] | None:
    return None if items is None else frozenset(items)


@dataclass(frozen=True, slots=True)
class CapPlan:
    """A :class:`~points.rules.ruleset.Cap` with its "binding limit" labels made once."""

    per_transaction: int | None
    per_day: int | None
    per_month: int | None
    transaction_label: str
    day_label: str
    month_label: str

    @classmethod
    def of(cls, cap: Cap | None) -> CapPlan | None:
        if cap is None:
            return None
        return cls(
            cap.per_transaction,
            cap.per_day,
            cap.per_month,
            f"{cap.per_transaction} per transaction",
            f"{cap.per_day} per day",
            f"{cap.per_month} per month",
        )


#: a behaviour-profile bound: [at_least, below), either end open (None)
Bounds = tuple[int | None, int | None]


def _bounds(between: Between | None) -> Bounds | None:
    return None if between is None else (between.at_least, between.below)


@dataclass(frozen=True, slots=True)
class BehaviourAudience:
    """The behaviour-profile conditions of an audience (points/rules/behaviour.py)."""

    lifecycle: frozenset[str] | None
    purchases_30d: Bounds | None
    purchases_90d: Bounds | None
    spend_30d_minor: Bounds | None
    spend_90d_minor: Bounds | None
    top_mcc_group: frozenset[str] | None
    partner_affinity: frozenset[str] | None

    @classmethod
    def of(cls, audience: Audience) -> BehaviourAudience | None:
        plan = cls(
            _set(list(audience.lifecycle)) if audience.lifecycle is not None else None,
            _bounds(audience.purchases_30d),
            _bounds(audience.purchases_90d),
            _bounds(audience.spend_30d_minor),
            _bounds(audience.spend_90d_minor),
            _set(audience.top_mcc_group),
            _set(audience.partner_affinity),
        )
        return None if plan == _NO_BEHAVIOUR else plan


_NO_BEHAVIOUR: Final = BehaviourAudience(None, None, None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class AudiencePlan:
    """A non-empty :class:`~points.rules.ruleset.Audience` (an empty one is None: everyone)."""

    segments: frozenset[str] | None
    statuses: frozenset[str] | None
    age_below: int | None
    age_at_least: int | None
    joined_within_days: int | None
    dormant_for_days: int | None
    #: None when the audience has no behaviour-profile condition (then none is computed)
    behaviour: BehaviourAudience | None = None

    @classmethod
    def of(cls, audience: Audience) -> AudiencePlan | None:
        plan = cls(
            _set(audience.segments),
            _set(list(audience.statuses)) if audience.statuses is not None else None,
            audience.age_below,
            audience.age_at_least,
            audience.joined_within_days,
            audience.dormant_for_days,
            BehaviourAudience.of(audience),
        )
        return None if plan == _NOBODY_IN_PARTICULAR else plan


_NOBODY_IN_PARTICULAR: Final = AudiencePlan(None, None, None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class Head:
    """What every compiled rule has: its position in the file, id, kind, cap and badge."""

    index: int
    id: str
    kind: str
    cap: CapPlan | None
    counter: str  # the name of its period counters, "rule:<id>"
    badge: str | None
    description: str

    def describe(self, why: str) -> str:
        return f"{why} ({self.description})" if self.description else why


@dataclass(frozen=True, slots=True)
class BasePlan:
    head: Head
    points: int
    per_minor: int
    groups: frozenset[str] | None
    channels: frozenset[str] | None
    rate_text: str  # "<points> per <per_minor> minor units on "


@dataclass(frozen=True, slots=True)
class MultiplierPlan:
    head: Head
    partners: frozenset[str]
    channels: frozenset[str] | None
    multiplier_percent: int


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    head: Head
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC
    groups: frozenset[str] | None
    channels: frozenset[str] | None
    partners: frozenset[str] | None
    min_amount_minor: int
    audience: AudiencePlan | None
    extra_percent: int | None
    fixed_points: int
    explanation: str
    policy: Policy
    holdout: HoldoutSplit | None = None  # holdout_percent's split (points/rules/holdout.py)


@dataclass(frozen=True, slots=True)
class FirstPartnerPlan:
    head: Head
    partners: frozenset[str]
    points: int
    min_amount_minor: int


@dataclass(frozen=True, slots=True)
class ReactivationPlan:
    head: Head
    dormant_days: int
    points: int
    min_amount_minor: int
    audience: AudiencePlan | None


@dataclass(frozen=True, slots=True)
class MilestonePlan:
    head: Head
    by_count: bool  # metric purchase_count (else cumulative_spend_minor)
    threshold: int
    points: int
    explanation: str


@dataclass(frozen=True, slots=True)
class StreakPlan:
    head: Head
    daily: bool  # period "day" (else "week")
    period: str
    length: int
    grace_periods: int
    repeat: bool
    counts: frozenset[str]
    min_amount_minor: int
    points: int
    grace_text: str  # ", up to N missed allowed" or ""
    #: periods kept behind the newest one (StreakState.recent): the lateness window, rounded
    #: up to whole periods, plus one for an event late across a period boundary
    window: int


@dataclass(frozen=True, slots=True)
class ChallengePlan:
    head: Head
    monthly: bool  # period "month" (else "week")
    target: int
    categories: frozenset[str] | None
    min_amount_minor: int
    requires_opt_in: bool
    points: int
    not_joined_note: str  # the note when a purchase does not count for lack of opting in


@dataclass(frozen=True, slots=True)
class SocialPlan:
    head: Head
    action: str
    points: int
    explanation: str


@dataclass(frozen=True, slots=True)
class Route:
    """The rules a purchase of one (MCC group, channel, partner) can meet, in file order.

    Only conditions on those three are settled here; amounts, dates, the audience and the
    customer's state are still checked per event.
    """

    base: BasePlan | None
    multipliers: tuple[MultiplierPlan, ...]
    campaigns: tuple[CampaignPlan, ...]
    first_partner: tuple[tuple[FirstPartnerPlan, str], ...]  # with its explanation
    challenges: tuple[ChallengePlan, ...]


def _counts(plan: SocialPlan | StreakPlan, action: str) -> bool:
    """Whether an app action earns under a social rule, or counts towards a streak."""
    return plan.action == action if isinstance(plan, SocialPlan) else action in plan.counts


def _money(exponent: int, currency: str, amount_minor: int) -> str:
    scale = 10**exponent
    if scale == 1:
        return f"{amount_minor} {currency}"
    whole, part = divmod(amount_minor, scale)
    return f"{whole}.{part:0{exponent}d} {currency}"


class RulePlan:
    """One rule set, compiled; see the module docstring. Build with :func:`plan_of`."""

    __slots__ = (
        "_joined_on",
        "_mcc_groups",
        "_mcc_ranges",
        "_money_part",
        "_money_scale",
        "_routes",
        "activity",
        "bases",
        "by_id",
        "calendar",
        "campaigns",
        "caps",
        "challenges",
        "currency",
        "currency_exponent",
        "eligible_statuses",
        "first_partner",
        "lateness_seconds",
        "lifecycle",
        "merchant_partner",
        "milestones",
        "multipliers",
        "purchase_streaks",
        "reactivations",
        "version",
        "zone",
    )

    def __init__(self, ruleset: RuleSet) -> None:
        # No reference to the rule set is kept: the cache below must not keep it alive.
        self.version = ruleset.version
        self.currency = ruleset.currency
        self.currency_exponent = ruleset.currency_exponent
        self._money_scale = 10**self.currency_exponent
        self._money_part = f"0{self.currency_exponent}d"  # the format of the minor digits
        self.zone: ZoneInfo = ruleset.zone
        self.eligible_statuses = frozenset(ruleset.eligible_statuses)
        cycle = ruleset.lifecycle
        self.lifecycle = LifecycleThresholds(
            cycle.new_days,
            cycle.dormant_days,
            cycle.reactivated_days,
            cycle.at_risk_percent,
            cycle.baseline_min_purchases,
        )
        self.caps = CapPlan.of(ruleset.caps)
        self.merchant_partner = {
            merchant: partner_id
            for partner_id, spec in ruleset.partners.items()
            for merchant in spec.merchant_ids
        }
        ranges = []
        for group, items in ruleset.mcc_groups.items():
            for item in items:
                lo, _, hi = item.partition("-")
                ranges.append((int(lo), int(hi or lo), group))
        self._mcc_ranges = tuple(sorted(ranges))
        self._mcc_groups: dict[str | None, str | None] = {}
        self._joined_on: dict[datetime, date] = {}
        self._routes: dict[tuple[str | None, str, str | None], Route] = {}
        #: the days this rule set has met and what each implies (its own: a day's counter keys
        #: name this rule set's capped rules); lives as long as the plan
        self.calendar = Calendar()
        #: every rule, enabled or not, by id (what ``RuleSet.rule`` answers)
        self.by_id = {rule.id: rule for rule in ruleset.rules}

        self.bases: list[BasePlan] = []
        self.multipliers: list[MultiplierPlan] = []
        self.campaigns: list[CampaignPlan] = []
        self.first_partner: list[FirstPartnerPlan] = []
        self.reactivations: tuple[ReactivationPlan, ...] = ()
        self.milestones: tuple[MilestonePlan, ...] = ()
        self.purchase_streaks: tuple[StreakPlan, ...] = ()
        self.challenges: list[ChallengePlan] = []
        #: action ("check_in", ...) -> the social and streak rules it counts for, in file order
        self.activity: dict[str, tuple[SocialPlan | StreakPlan, ...]] = {}
        #: how long (seconds) a refund's "forgotten" entries are kept (points.rules.recall)
        self.lateness_seconds: int = ruleset.lateness_hours * 3600
        self._compile(ruleset)

    # ------------------------------------------------------------------------- compiling

    def _compile(self, ruleset: RuleSet) -> None:
        reactivations: list[ReactivationPlan] = []
        milestones: list[MilestonePlan] = []
        streaks: list[StreakPlan] = []
        activity: list[SocialPlan | StreakPlan] = []
        for index, rule in enumerate(ruleset.rules):
            if not rule.enabled:
                continue
            head = Head(
                index,
                rule.id,
                rule.kind,
                CapPlan.of(rule.cap),
                f"rule:{rule.id}",
                getattr(rule, "badge", None),
                rule.description,
            )
            if isinstance(rule, BaseRateRule):
                self.bases.append(
                    BasePlan(
                        head,
                        rule.points,
                        rule.per_minor,
                        _set(rule.mcc_groups),
                        _set(list(rule.channels)) if rule.channels is not None else None,
                        f"{rule.points} per {rule.per_minor} minor units on ",
                    )
                )
            elif isinstance(rule, PartnerMultiplierRule):
                self.multipliers.append(
                    MultiplierPlan(
                        head,
                        frozenset(rule.partners),
                        _set(list(rule.channels)) if rule.channels is not None else None,
                        rule.multiplier_percent,
                    )
                )
            elif isinstance(rule, CampaignRule):
                match = rule.match
                if rule.extra_percent is not None:
                    why = f"campaign: +{rule.extra_percent}% of base points"
                    policy: Policy = "proportional"
                else:
                    why = "campaign: fixed bonus"
                    policy = "full_refund"
                self.campaigns.append(
                    CampaignPlan(
                        head,
                        rule.window.starts_at.astimezone(UTC),
                        rule.window.ends_at.astimezone(UTC),
                        _set(match.mcc_groups),
                        _set(list(match.channels)) if match.channels is not None else None,
                        _set(match.partners),
                        match.min_amount_minor,
                        AudiencePlan.of(rule.audience),
                        rule.extra_percent,
                        rule.fixed_points or 0,
                        head.describe(why),
                        policy,
                        None
                        if rule.holdout_percent is None
                        else HoldoutSplit(rule.id, rule.holdout_percent),
                    )
                )
            elif isinstance(rule, FirstPartnerPurchaseRule):
                self.first_partner.append(
                    FirstPartnerPlan(
                        head, frozenset(rule.partners), rule.points, rule.min_amount_minor
                    )
                )
            elif isinstance(rule, ReactivationRule):
                reactivations.append(
                    ReactivationPlan(
                        head,
                        rule.dormant_days,
                        rule.points,
                        rule.min_amount_minor,
                        AudiencePlan.of(rule.audience),
                    )
                )
            elif isinstance(rule, MilestoneRule):
                milestones.append(
                    MilestonePlan(
                        head,
                        rule.metric == "purchase_count",
                        rule.threshold,
                        rule.points,
                        self._milestone_text(rule),
                    )
                )
            elif isinstance(rule, StreakRule):
                streak = StreakPlan(
                    head,
                    rule.period == "day",
                    rule.period,
                    rule.length,
                    rule.grace_periods,
                    rule.repeat,
                    frozenset(rule.counts),
                    rule.min_amount_minor,
                    rule.points,
                    f", up to {rule.grace_periods} missed allowed" if rule.grace_periods else "",
                    _periods_within(ruleset.lateness_hours, 24 if rule.period == "day" else 168),
                )
                if "purchase" in streak.counts:
                    streaks.append(streak)
                activity.append(streak)
            elif isinstance(rule, SocialRule):
                activity.append(
                    SocialPlan(head, rule.action, rule.points, head.describe(rule.action))
                )
            elif isinstance(rule, ChallengeRule):
                self.challenges.append(
                    ChallengePlan(
                        head,
                        rule.period == "month",
                        rule.target,
                        _set(rule.categories),
                        rule.min_amount_minor,
                        rule.requires_opt_in,
                        rule.points,
                        f"challenge {rule.id} not joined this period; purchase not counted",
                    )
                )
        self.reactivations = tuple(reactivations)
        self.milestones = tuple(milestones)
        self.purchase_streaks = tuple(streaks)
        for action in ("check_in", "share", "challenge_opt_in"):
            self.activity[action] = tuple(plan for plan in activity if _counts(plan, action))

    def _milestone_text(self, rule: MilestoneRule) -> str:
        if rule.metric == "purchase_count":
            what = f"purchase number {rule.threshold}"
        else:
            what = f"cumulative spend of {self.money(rule.threshold)}"
        badge = f", badge {rule.badge}" if rule.badge else ""
        return f"milestone reached: {what}{badge}"

    # ---------------------------------------------------------------------- per event

    def money(self, amount_minor: int) -> str:
        """``_money(currency_exponent, currency, amount_minor)``: in every base-rate line."""
        scale = self._money_scale
        if scale == 1:
            return f"{amount_minor} {self.currency}"
        whole, part = divmod(amount_minor, scale)
        return f"{whole}.{format(part, self._money_part)} {self.currency}"

    def mcc_group(self, mcc: str | None) -> str | None:
        """``RuleSet.mcc_group``, remembered per MCC (there are a few hundred in use)."""
        try:
            return self._mcc_groups[mcc]
        except KeyError:
            pass
        group: str | None = None
        if mcc is not None and mcc.isdigit():
            code = int(mcc)
            for lo, hi, name in self._mcc_ranges:
                if lo <= code <= hi:
                    group = name
                    break
        if len(self._mcc_groups) >= MEMO_LIMIT:
            self._mcc_groups.clear()
        self._mcc_groups[mcc] = group
        return group

    def joined_on(self, joined_at: datetime) -> date:
        """The day a customer joined, in the rule set's zone (remembered per join time).

        Audiences and reactivations ask for it on most purchases; the zone conversion costs
        more than a lookup. A time with fold=1 (the repeat of a wall-clock hour) compares
        equal to its fold=0 twin but may be another day, so it is not remembered.
        """
        found = self._joined_on.get(joined_at)
        if found is None or joined_at.fold:
            found = joined_at.astimezone(self.zone).date()
            if not joined_at.fold:
                if len(self._joined_on) >= MEMO_LIMIT:
                    self._joined_on.clear()
                self._joined_on[joined_at] = found
        return found

    def route(self, group: str | None, channel: str, partner: str | None) -> Route:
        key = (group, channel, partner)
        found = self._routes.get(key)
        if found is None:
            found = self._route(group, channel, partner)
            if len(self._routes) >= MEMO_LIMIT:
                self._routes.clear()
            self._routes[key] = found
        return found

    def _route(self, group: str | None, channel: str, partner: str | None) -> Route:
        base = next(
            (
                rule
                for rule in self.bases
                if (rule.groups is None or group in rule.groups)
                and (rule.channels is None or channel in rule.channels)
            ),
            None,
        )
        return Route(
            base=base,
            multipliers=tuple(
                rule
                for rule in self.multipliers
                if partner in rule.partners and (rule.channels is None or channel in rule.channels)
            ),
            campaigns=tuple(
                rule
                for rule in self.campaigns
                if (rule.groups is None or group in rule.groups)
                and (rule.channels is None or channel in rule.channels)
                and (rule.partners is None or partner in rule.partners)
            ),
            first_partner=tuple(
                (rule, f"first purchase at partner {partner}")
                for rule in self.first_partner
                if partner in rule.partners
            ),
            # A purchase outside any MCC group, or outside the challenge's categories, never
            # counts towards (nor changes) a challenge.
            challenges=tuple(
                rule
                for rule in self.challenges
                if group is not None and (rule.categories is None or group in rule.categories)
            ),
        )


# ------------------------------------------------------------------------------- the cache

#: id(rule set) -> (weak reference to it, its plan). Keyed by id because rule sets are not
#: hashable; the weak reference tells a live rule set from a new one that reuses a dead one's
#: id, and its callback drops the entry. Not stored on the model itself: pydantic compares
#: private attributes in ``==``, and two equal rule files must stay equal.
_PLANS: dict[int, tuple[weakref.ref[RuleSet], RulePlan]] = {}


def _periods_within(hours: int, period_hours: int) -> int:
    """How many periods back an event up to ``hours`` late can fall (ceil, plus a boundary)."""
    return -(-hours // period_hours) + 1


def plan_of(ruleset: RuleSet) -> RulePlan:
    """The compiled plan of ``ruleset`` (compiled on first use)."""
    key = id(ruleset)
    entry = _PLANS.get(key)
    if entry is not None and entry[0]() is ruleset:
        return entry[1]
    plan = RulePlan(ruleset)

    def forget(_: weakref.ref[RuleSet]) -> None:
        current = _PLANS.get(key)
        if current is not None and current[0]() is None:
            del _PLANS[key]

    _PLANS[key] = (weakref.ref(ruleset, forget), plan)
    return plan
