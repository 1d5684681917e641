"""Caps: each rule's own ``cap`` (per transaction, day, month), then the rule set's overall
``caps``, applied to an event's candidate lines in file order (later lines are cut first), and
the period counters they read advanced by what was awarded.

The overall caps limit purchases only (docs/rules.md "Caps"). Why: app activity comes on its
own topic, and Kafka orders nothing between two topics. Had a check-in shared the day's room
with purchases, whichever was consumed first would take it, and a later refund of the purchase
that filled the day would take back an amount that depended on that order (the model-day
journey's 1-2 customers a few points off). App activity is limited by its own rules' caps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Final

from points.rules.counters import pruned
from points.rules.days import Day
from points.rules.plan import CapPlan, Head, RulePlan
from points.rules.records import ClawbackPolicy, Line, build_line
from points.rules.state import RuleState, copy_of

__all__ = ["CAPS_GONE", "Candidate", "apply_caps", "room"]

#: a candidate line: (position of its rule in the file, the rule, points, why, clawback policy).
#: Each rule gives at most one candidate, so positions are unique and a plain sort of the
#: tuples puts them in file order.
Candidate = tuple[int, Head, int, str, ClawbackPolicy]
#: Evaluation.too_late_for's name for "this period's cap counters are no longer kept".
CAPS_GONE: Final = "caps"


def room(
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


def apply_caps(
    plan: RulePlan,
    candidates: Sequence[Candidate],
    state: RuleState,
    today: Day,
    overall: bool = True,
) -> tuple[tuple[Line, ...], int, Mapping[str, int], date, bool]:
    """The lines after the caps, their total, the state's next counters and latest day, and
    whether a cap was read for a day or month whose counters are no longer kept (too late).

    ``overall``: whether the rule set's overall caps apply (a purchase) or not (app activity,
    which then neither reads nor fills their room: see the module's docstring).

    The counters are advanced as ``advance_counters`` does with the points each capped rule
    and the total earned (zeros add nothing), added straight into a copy of the counters.
    """
    counters = state.counters
    latest_day = state.latest_day
    if latest_day is None:
        kept_day = kept_month = True
    else:
        after_day, after_month = plan.calendar.kept_after[latest_day]
        kept_day = today.day > after_day
        kept_month = today.month_index > after_month
    updated = copy_of(counters)  # rooms read ``counters``, points go into ``updated``
    added = False
    lines: list[Line] = []
    total_room: int | None = None
    total_label = ""
    overall_caps = plan.caps if overall else None
    if overall_caps is not None:
        total_room, total_label = room(
            overall_caps,
            counters,
            today.day_total if kept_day else None,
            today.month_total if kept_month else None,
        )
    total = 0
    gone = not (kept_day and kept_month) and (
        overall_caps is not None or any(candidate[1].cap is not None for candidate in candidates)
    )
    for _, head, points, explanation, policy in candidates:
        cap = head.cap
        if cap is not None:
            day_key, month_key = today.rule_keys.get(head.counter) or today.keys_of(head.counter)
            rule_room, rule_label = room(
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
        lines.append(build_line(head.id, head.kind, points, explanation, policy))
        total += points
    if total and overall:
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
