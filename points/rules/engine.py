"""Earning: ``evaluate`` (real events) and ``preview`` (what-if), one code path, no side effects.

For a purchase the engine, in this order:

1. decides the moment: the event's ``occurred_at``, or ``now`` if the event claims a later time
   (a producer cannot timestamp itself into a future campaign), in the rule set's time zone;
2. computes a candidate line per firing rule, in file order, the base rate first because
   multipliers and campaigns are percentages of it (every division rounds down);
3. applies each rule's own ``cap`` (per transaction, day, month), then the rule set's overall
   ``caps`` in line order, so later lines are cut first;
4. advances the state: purchase count, cumulative spend, dates, partners seen, milestones,
   streaks, challenge progress, badges, the period counters the caps read, and the behaviour
   profile (points/rules/behaviour.py; a purchase that earns nothing because of the
   customer's status or the currency does not count in it).

Activity events (check-in, share, challenge opt-in) go through the same steps with the social,
streak and challenge rules. Every line names its rule, its points and why, and how a refund
treats it (``clawback``): see :mod:`points.rules.clawback`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from points.events import ChallengeOptIn, CheckIn, PartnerPurchase, Purchase, Share
from points.rules.behaviour import RECENT_DAYS, WINDOW_DAYS, stage_of
from points.rules.caps import CAPS_GONE, Candidate, apply_caps
from points.rules.days import Day, later, moment
from points.rules.errors import NotAnEarningEvent
from points.rules.gamification import (
    count_purchase_challenges,
    count_purchase_streaks,
    evaluate_activity,
    new_badges,
)
from points.rules.plan import AudiencePlan, BehaviourAudience, Bounds, Route, RulePlan, plan_of
from points.rules.recall import recall
from points.rules.records import (
    UNKNOWN_JOINED_AT,
    EarningEvent,
    Evaluation,
    Line,
    Profile,
    PurchaseFacts,
    build_evaluation,
)
from points.rules.ruleset import RuleSet
from points.rules.state import RuleState, behaviour_of, copy_of, refrozen

__all__ = ["evaluate", "preview"]


class PurchaseLike(Protocol):
    """What the purchase path reads: a :class:`PurchaseFacts`, or the ``bank.transactions``
    :class:`~points.events.Purchase` itself (same field names), so the worker's hot path
    makes no object per purchase to carry them."""

    @property
    def amount_minor(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def mcc(self) -> str | None: ...
    @property
    def merchant_id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def partner_id(self) -> str | None: ...
    @property
    def event_id(self) -> str: ...
    @property
    def customer_id(self) -> str: ...


# ------------------------------------------------------------------------------- public API


def evaluate(
    ruleset: RuleSet, event: EarningEvent, profile: Profile, state: RuleState, *, now: datetime
) -> Evaluation:
    """Award points for one event. Pure: same inputs, same result; time is the event's.

    ``now`` is the processing time; it only bounds an event that claims to be from the future.
    Refunds and reversals are not earning events: use :func:`points.rules.clawback.clawback`.
    """
    if isinstance(event, Purchase):
        # The hot path: the purchase path reads the event itself (see PurchaseLike). A purchase
        # that would fail PurchaseFacts' checks (the event model already enforces them) still
        # gets their error.
        amount = event.amount_minor
        if type(amount) is not int or amount <= 0 or event.occurred_at.tzinfo is None:
            PurchaseFacts.from_purchase(event)
        return _evaluate_purchase(plan_of(ruleset), event, profile, state, now)
    if isinstance(event, PartnerPurchase):
        facts = PurchaseFacts.from_partner_purchase(event)
        return _evaluate_purchase(plan_of(ruleset), facts, profile, state, now)
    if isinstance(event, CheckIn | Share | ChallengeOptIn):
        return evaluate_activity(ruleset, event, profile, state, now)
    raise NotAnEarningEvent(
        f"{type(event).__name__} does not earn points; refunds and reversals go to clawback()"
    )


def preview(
    ruleset: RuleSet, purchase: PurchaseFacts, profile: Profile, state: RuleState, *, now: datetime
) -> Evaluation:
    """ "If I spend X at merchant Y now, what do I earn and why": the real path, nothing kept."""
    return _evaluate_purchase(plan_of(ruleset), purchase, profile, state, now)


# --------------------------------------------------------------------------- the purchase path
#
# Everything below reads the rule set through its compiled plan (points.rules.plan): see
# there why. The order of the steps, and every text and number, is the documented one above.
#
# This is the per-event path of the earning worker (tens of thousands of events a second), so
# it avoids work that does not depend on the event: what a calendar day implies is worked out
# once per day (points.rules.days), results are built without the frozen dataclasses'
# per-field __init__ (points.rules.records), and values used by several rules (days since
# joining or since the last purchase) are computed once, when first needed. Every result is
# the same as the plain reading of the rules.


def _evaluate_purchase(
    plan: RulePlan, purchase: PurchaseLike, profile: Profile, state: RuleState, now: datetime
) -> Evaluation:
    """The purchase path of :func:`evaluate` and :func:`preview`: steps 1 to 4 above."""
    _, at_utc, day, notes = moment(plan.zone, purchase.occurred_at, now)
    amount = purchase.amount_minor
    currency = purchase.currency
    partner = purchase.partner_id
    if partner is None:
        partner = plan.merchant_partner.get(purchase.merchant_id)
    if profile.status not in plan.eligible_statuses:
        notes.append(f"customer status {profile.status!r} does not earn")
        return _no_points(plan, purchase, partner, notes, state)
    if currency != plan.currency:
        notes.append(f"currency {currency} does not earn (rule set earns on {plan.currency})")
        touched = replace(state, last_activity_on=later(state.last_activity_on, day))
        return _no_points(plan, purchase, partner, notes, touched)

    today = plan.calendar.days[day]
    mcc = purchase.mcc
    group = plan.mcc_group(mcc)
    channel = purchase.channel
    route = plan.route(group, channel, partner)
    candidates: list[Candidate] = []
    next_count = state.purchase_count + 1
    next_spend = state.cumulative_spend_minor + amount
    restored: list[Line] | None = None
    partner_known = False
    regained: list[str] | None = None
    if state.forgotten:  # rare: a refund made the rules forget something (points.rules.recall)
        badges_before = state.badges
        state, partner_known, restored = recall(
            plan,
            state,
            int(at_utc.timestamp()),
            partner,
            next_count,
            next_spend,
            purchase.event_id,
        )
        regained = sorted(state.badges - badges_before)

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
    held = _bonuses(
        plan,
        route,
        profile,
        state,
        today,
        at_utc,
        amount,
        base_points,
        partner,
        candidates,
        purchase.customer_id,
        partner_known,
    )
    if held is not None:
        notes.extend(
            f"held out of campaign {rule_id} (its control group): would have earned {points}"
            for rule_id, points in held
        )
    reached = _milestones_reached(plan, state, next_count, next_spend, candidates)
    streaks, too_late = count_purchase_streaks(plan, state, today, amount, candidates)
    challenges = count_purchase_challenges(route, state, today, group, amount, notes, candidates)

    # Candidates were gathered kind by kind; lines and caps go in file order.
    candidates.sort()
    lines, total, counters, latest_day, caps_gone = apply_caps(plan, candidates, state, today)
    if caps_gone:
        too_late = [*(too_late or ()), CAPS_GONE]
    if restored:
        lines = (*lines, *restored)
        total += sum(line.points for line in restored)

    milestones = state.milestones
    milestone_events = state.milestone_events
    if reached:
        milestones, milestone_events = _milestones_paid(state, reached, lines, purchase.event_id)
    partners_seen = state.partners_seen
    if partner is not None and partner not in partners_seen and not partner_known:
        # (partner_known: made before a refund that forgot the partner, which stays forgotten)
        partners_seen = partners_seen | {partner}
    badges = new_badges(candidates, state)
    last_purchase_on = state.last_purchase_on
    behaviour = behaviour_of(state).with_purchase(
        today.ordinal, amount, group, partner, plan.lifecycle.dormant_days
    )
    next_state = RuleState._trusted(
        next_count,
        next_spend,
        day if last_purchase_on is None else max(last_purchase_on, day),
        later(state.last_activity_on, day),
        latest_day,
        state.badges | frozenset(badges) if badges else state.badges,
        partners_seen,
        milestones,
        milestone_events,
        state.streaks if streaks is None else refrozen(streaks, state.streaks),
        state.challenges if challenges is None else refrozen(challenges, state.challenges),
        counters,
        state.forgotten,
        behaviour,
    )
    if regained:
        badges += regained
    return build_evaluation(
        purchase.event_id,
        purchase.customer_id,
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
        () if held is None else tuple(held),
    )


def _no_points(
    plan: RulePlan,
    purchase: PurchaseLike,
    partner: str | None,
    notes: list[str],
    state: RuleState,
) -> Evaluation:
    """A purchase that earns nothing (notes say why); ``state`` is the customer's next one."""
    return build_evaluation(
        purchase.event_id,
        purchase.customer_id,
        plan.version,
        0,
        (),
        (),
        tuple(notes),
        state,
        purchase.amount_minor,
        purchase.currency,
        partner,
    )


def _bonuses(
    plan: RulePlan,
    route: Route,
    profile: Profile,
    state: RuleState,
    today: Day,
    at_utc: datetime,
    amount: int,
    base_points: int,
    partner: str | None,
    candidates: list[Candidate],
    customer_id: str,
    partner_known: bool = False,
) -> list[tuple[str, int]] | None:
    """Add the candidate lines of the campaigns, first-partner bonuses and reactivations.

    Returns the (campaign id, points) a customer in a campaign's holdout would have earned
    from this purchase, before caps (points/rules/holdout.py), or None: no list is made for
    the usual purchase."""
    # Days since the last purchase: reactivations always need it, dormant audiences may.
    idle = _days_since_purchase(plan, profile, state, today) if plan.reactivations else None
    held: list[tuple[str, int]] | None = None

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
            holdout = campaign.holdout
            if holdout is not None and holdout.holds(customer_id):
                if held is None:
                    held = []
                held.append((campaign.head.id, points))
                continue
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
        if partner not in partners_seen and not partner_known and amount >= first.min_amount_minor:
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
    return held


def _milestones_reached(
    plan: RulePlan,
    state: RuleState,
    next_count: int,
    next_spend: int,
    candidates: list[Candidate],
) -> list[str]:
    """The milestones this purchase reaches (their candidate lines added to ``candidates``)."""
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
    return reached


def _milestones_paid(
    state: RuleState, reached: list[str], lines: tuple[Line, ...], event_id: str
) -> tuple[Mapping[str, int], Mapping[str, str]]:
    """The state's milestones and their payers once ``reached`` are paid by ``event_id``."""
    updated = copy_of(state.milestones)
    payers = copy_of(state.milestone_events)
    awarded = {line.rule_id: line.points for line in lines}
    for rule_id in reached:
        updated[rule_id] = awarded[rule_id]
        payers[rule_id] = event_id  # a refund that undoes it takes it back from here
    return refrozen(updated, state.milestones), refrozen(payers, state.milestone_events)


# ---------------------------------------------------------------------------------- audience


def _days_since_joining(plan: RulePlan, profile: Profile, today: Day) -> int:
    return today.ordinal - plan.joined_on(profile.joined_at).toordinal()


def _days_since_purchase(plan: RulePlan, profile: Profile, state: RuleState, today: Day) -> int:
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
    today: Day,
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
    if audience.dormant_for_days is not None:
        if idle is None:
            idle = _days_since_purchase(plan, profile, state, today)
        if idle < audience.dormant_for_days:
            return False
    return audience.behaviour is None or _behaviour_matches(
        plan, audience.behaviour, state, today.ordinal
    )


def _behaviour_matches(
    plan: RulePlan, conditions: BehaviourAudience, state: RuleState, day: int
) -> bool:
    """Whether the behaviour profile, just before this event and on its day, meets every
    condition given (each is computed only if asked)."""
    behaviour = behaviour_of(state)
    if conditions.lifecycle is not None and (
        stage_of(behaviour, day, plan.lifecycle) not in conditions.lifecycle
    ):
        return False
    recent = conditions.purchases_30d, conditions.spend_30d_minor
    if recent != (None, None):
        purchases, spend = behaviour.window(day, RECENT_DAYS)
        if not (_within(purchases, recent[0]) and _within(spend, recent[1])):
            return False
    longer = conditions.purchases_90d, conditions.spend_90d_minor
    if longer != (None, None):
        purchases, spend = behaviour.window(day, WINDOW_DAYS)
        if not (_within(purchases, longer[0]) and _within(spend, longer[1])):
            return False
    if conditions.top_mcc_group is not None:
        top = behaviour.top_mcc_groups()
        if not top or top[0][0] not in conditions.top_mcc_group:
            return False
    if conditions.partner_affinity is not None:
        top = behaviour.top_partners()
        if not top or top[0][0] not in conditions.partner_affinity:
            return False
    return True


def _within(value: int, bounds: Bounds | None) -> bool:
    if bounds is None:
        return True
    at_least, below = bounds
    return (at_least is None or value >= at_least) and (below is None or value < below)
