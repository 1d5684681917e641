"""A customer's lifecycle stage and profile read off their rule state (what others call).

The stage is asked "as of" a day. The stream's own answer for a state is as of the newest
event day the state has seen (``RuleState.latest_day``: purchases and app activity, by event
time), so it moves when the customer's events do; a timer or a report may ask as of another
day (``stage_at``). See points/rules/behaviour.py for the stages and their thresholds (the
compiled rule set's ``RulePlan.lifecycle``).
"""

from __future__ import annotations

from datetime import date

from points.rules.behaviour import LifecycleThresholds, Snapshot, snapshot, stage_of
from points.rules.state import RuleState, behaviour_of

__all__ = ["as_of_day", "lifecycle_change", "profile_of", "stage_at"]


def as_of_day(state: RuleState) -> date | None:
    """The newest event day the state has seen (None: no event yet)."""
    latest = state.latest_day
    last = state.last_purchase_on
    if latest is None or (last is not None and last > latest):
        return last
    return latest


def stage_at(state: RuleState, day: date, thresholds: LifecycleThresholds) -> str:
    """The customer's lifecycle stage on ``day``."""
    return stage_of(behaviour_of(state), day.toordinal(), thresholds)


def lifecycle_change(
    before: RuleState, after: RuleState, thresholds: LifecycleThresholds
) -> tuple[str, str]:
    """(stage before, stage after) an event: each state's stage as of its own newest event
    day. ``before`` with no event yet is ``new``. A win-back trigger fires on
    ``before != "at_risk" and after == "at_risk"``."""
    day_before = as_of_day(before)
    first = "new" if day_before is None else stage_at(before, day_before, thresholds)
    day_after = as_of_day(after)
    second = "new" if day_after is None else stage_at(after, day_after, thresholds)
    return first, second


def profile_of(
    state: RuleState, thresholds: LifecycleThresholds, as_of: date | None = None
) -> Snapshot | None:
    """Everything the profile says as of ``as_of`` (default: the state's newest event day);
    None for a state that has seen no event."""
    day = as_of or as_of_day(state)
    if day is None:
        return None
    return snapshot(behaviour_of(state), day, thresholds)
