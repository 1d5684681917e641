"""Gamification: streaks, challenges and badges, and the app activity that feeds them.

- A **streak** counts periods (days or weeks) with a qualifying action; its bonuses are decided
  by event time, so a period that arrives late (within what the state keeps) pays what in-order
  arrival would have paid, once (:func:`advance_streak`, :func:`walk`).
- A **challenge** counts the distinct MCC groups a customer buys in within a month or week,
  after opting in if the rule asks (:func:`advance_challenge`).
- A **badge** comes with a rule that fired, once per customer (:func:`new_badges`).

:func:`evaluate_activity` is the whole path of an app event (check-in, share, challenge
opt-in); purchases count toward streaks and challenges through :func:`count_purchase_streaks`
and :func:`count_purchase_challenges`, called by :mod:`points.rules.engine`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final

from points.events import ChallengeOptIn, CheckIn, Share
from points.rules.caps import CAPS_GONE, Candidate, apply_caps
from points.rules.days import Day, later, moment
from points.rules.plan import ChallengePlan, Route, RulePlan, SocialPlan, StreakPlan, plan_of
from points.rules.records import Evaluation, Profile, build_evaluation
from points.rules.ruleset import ChallengeRule, RuleSet
from points.rules.state import (
    NO_SETTLED,
    ChallengeState,
    RuleState,
    StreakState,
    copy_of,
    refrozen,
)

__all__ = [
    "TOO_LATE",
    "advance_challenge",
    "advance_streak",
    "count_purchase_challenges",
    "count_purchase_streaks",
    "evaluate_activity",
    "new_badges",
    "walk",
]

#: What advance_streak returns for a period older than the streak remembers: it is not
#: counted (and the earning service records why).
TOO_LATE: Final = StreakState(-1, 0)


def evaluate_activity(
    ruleset: RuleSet,
    event: CheckIn | Share | ChallengeOptIn,
    profile: Profile,
    state: RuleState,
    now: datetime,
) -> Evaluation:
    """The app-activity path of :func:`points.rules.evaluate`: an opt-in joins its challenge
    for the period; social rules pay the action and streak rules count it; then the rules' own
    caps (the overall caps are for purchases)."""
    plan = plan_of(ruleset)
    _, _, day, notes = moment(plan.zone, event.occurred_at, now)
    today = plan.calendar.days[day]
    action = event.event_type
    candidates: list[Candidate] = []
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
            moved, award = advance_streak(rule, state.streaks, today)
            if moved is TOO_LATE:
                too_late.append(rule.head.id)
            elif moved is not None:
                if streaks is None:
                    streaks = copy_of(state.streaks)
                streaks[rule.head.id] = moved
            if award is not None:
                candidates.append((rule.head.index, rule.head, rule.points, award, "kept"))

    # App activity: its rules' own caps only, never the overall ones (points/rules/caps.py).
    lines, total, counters, latest_day, caps_gone = apply_caps(
        plan, candidates, state, today, overall=False
    )
    if caps_gone:
        too_late.append(CAPS_GONE)
    badges = new_badges(candidates, state)
    next_state = RuleState._trusted(
        state.purchase_count,
        state.cumulative_spend_minor,
        state.last_purchase_on,
        later(state.last_activity_on, day),
        latest_day,
        state.badges | frozenset(badges) if badges else state.badges,
        state.partners_seen,
        state.milestones,
        state.milestone_events,
        state.streaks if streaks is None else refrozen(streaks, state.streaks),
        state.challenges if challenges is None else refrozen(challenges, state.challenges),
        counters,
        state.forgotten,
        state.behaviour,
    )
    return build_evaluation(
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


def count_purchase_streaks(
    plan: RulePlan,
    state: RuleState,
    today: Day,
    amount: int,
    candidates: list[Candidate],
) -> tuple[dict[str, StreakState] | None, list[str] | None]:
    """Count a purchase toward the purchase streaks: their progress if any moved (a copy of
    the state's, else None), the streaks it is too late for (else None); bonuses go to
    ``candidates``."""
    # Streak progress is copied only when a rule moves it (most purchases count in a period
    # already counted).
    streaks: dict[str, StreakState] | None = None
    too_late: list[str] | None = None  # made when an event is too late for something
    for streak in plan.purchase_streaks:
        if amount >= streak.min_amount_minor:
            current = state.streaks.get(streak.head.id)
            if current is not None and current.last_period == (
                today.ordinal if streak.daily else today.week
            ):
                continue  # counted this period already: what advance_streak would say
            moved, award = advance_streak(streak, state.streaks, today)
            if moved is TOO_LATE:
                too_late = [*(too_late or ()), streak.head.id]
            elif moved is not None:
                if streaks is None:
                    streaks = copy_of(state.streaks)
                streaks[streak.head.id] = moved
            if award is not None:
                candidates.append(
                    (streak.head.index, streak.head, streak.points, award, "full_refund")
                )
    return streaks, too_late


def count_purchase_challenges(
    route: Route,
    state: RuleState,
    today: Day,
    group: str | None,
    amount: int,
    notes: list[str],
    candidates: list[Candidate],
) -> dict[str, ChallengeState] | None:
    """Count a purchase's MCC group toward the challenges its route lists: their progress if
    any moved (a copy of the state's, else None); completions go to ``candidates``."""
    challenges: dict[str, ChallengeState] | None = None
    for challenge in route.challenges:
        progress, award = advance_challenge(
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
    return challenges


def advance_streak(
    rule: StreakPlan, streaks: Mapping[str, StreakState], today: Day
) -> tuple[StreakState | None, str | None]:
    """Count this period in the streak: its new progress (None: unchanged; ``TOO_LATE``: too
    old to count) and the award text when the bonuses the streak deserves outgrow those paid.

    The streak is decided by event time: the bonuses deserved are a function of the set of
    active periods (walked in order, see ``walk``), so a period that arrives late, within
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
            return TOO_LATE, None  # folded into `settled`: its place in the runs is gone
        recent = tuple(sorted((*current.recent, index)))
        paid = current.paid
    oldest_kept = recent[-1] - rule.window
    if recent[0] < oldest_kept:  # fold periods the window no longer needs into `settled`
        folded = 0
        while recent[folded] < oldest_kept:
            folded += 1
        last, length, deserved, _ = walk(rule, recent[:folded], settled)
        settled = (last, length, settled[2] + deserved)
        recent = recent[folded:]
    last, length, deserved, hit_length = walk(rule, recent, settled)
    deserved += settled[2]
    if not rule.repeat:
        deserved = min(deserved, 1)
    award = None
    if deserved > paid:
        paid = deserved
        award = f"streak: {hit_length} consecutive {rule.period}s{rule.grace_text}"
    return StreakState(last, length, recent, settled, paid), award


def walk(
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


def advance_challenge(
    rule: ChallengePlan,
    challenges: Mapping[str, ChallengeState],
    today: Day,
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


def new_badges(candidates: Sequence[Candidate], state: RuleState) -> list[str]:
    """Badges of the rules that fired (even if capped to 0 points) the customer lacks."""
    badges: list[str] = []
    for candidate in candidates:
        badge = candidate[1].badge
        if badge is not None and badge not in state.badges and badge not in badges:
            badges.append(badge)
    return badges
