"""Recall: a purchase made before a refund that made the rules forget something, processed after.

A full refund makes the rules forget what the refunded purchase (or the purchase count or spend
it brought) let the customer earn once: the partner of a refunded first partner purchase, and
every milestone no longer met (points.rules.clawback). Both can be earned again, but only by a
purchase made *after* the refund (docs/rules.md). Processing order is not event-time order: a
refund that arrived before its purchase is applied right after that purchase, and so before
another purchase of the customer that was made earlier than the refund but arrives later. Had
everything arrived in event-time order, that purchase would have been made while the partner
was still known and the milestone still held. So the refund records its event time with what
it forgot (RuleState.forgotten), and a purchase made before that time:

- does not earn the forgotten first partner purchase again (the partner was known when it was
  made; the refund forgets it afterwards, so the partner stays forgotten);
- restores a forgotten milestone it keeps met (its purchase counted, the refund would not
  have taken it back): the points taken back are paid again on this purchase, outside the caps
  (they were counted against the caps when first paid, and a clawback gives no cap room back),
  its badge is given back, and this purchase becomes the one a later refund takes it from. A
  milestone it does not keep met stays forgotten (and is not reached by it either).

Nothing already paid is re-allocated. A purchase made after the refund earns as usual, and an
entry is dropped once purchases a lateness window past its refund are processed.
"""

from __future__ import annotations

from collections.abc import Mapping

from points.rules.plan import RulePlan
from points.rules.records import Line, build_line
from points.rules.state import RuleState, _frozen, copy_of

__all__ = ["MILESTONE", "PARTNER", "forget", "recall"]

#: RuleState.forgotten key prefixes
PARTNER = "partner:"
MILESTONE = "milestone:"


def recall(
    plan: RulePlan,
    state: RuleState,
    at_s: int,
    partner: str | None,
    next_count: int,
    next_spend: int,
    event_id: str,
) -> tuple[RuleState, bool, list[Line]]:
    """For a purchase made at ``at_s`` (epoch seconds) with a non-empty ``state.forgotten``:
    the state to evaluate it on (milestones restored, stale entries dropped), whether its
    partner counts as known, and the restored milestone lines (outside the caps)."""
    forgotten = dict(state.forgotten)
    partner_known = False
    restored: list[Line] = []
    milestones: dict[str, int] | None = None
    payers: dict[str, str] | None = None
    badges = state.badges
    for key, (refunded_at, points) in state.forgotten.items():
        if refunded_at + plan.lateness_seconds < at_s:
            del forgotten[key]  # nothing made before that refund is still expected
            continue
        if at_s >= refunded_at:
            continue  # made after the refund: earns as usual
        if key.startswith(PARTNER):
            if partner is not None and key == PARTNER + partner:
                partner_known = True
            continue
        rule_id = key[len(MILESTONE) :]
        for milestone in plan.milestones:
            if milestone.head.id != rule_id or rule_id in state.milestones:
                continue
            value = next_count if milestone.by_count else next_spend
            if value < milestone.threshold:
                continue
            if milestones is None or payers is None:
                milestones = copy_of(state.milestones)
                payers = copy_of(state.milestone_events)
            milestones[rule_id] = points
            payers[rule_id] = event_id
            del forgotten[key]
            badge = milestone.head.badge
            if badge is not None:
                badges = badges | {badge}
            restored.append(
                build_line(
                    rule_id,
                    milestone.head.kind,
                    points,
                    f"milestone restored: made before the refund that took it back, this "
                    f"purchase keeps {'the purchase count' if milestone.by_count else 'spend'} "
                    f"at {value} >= {milestone.threshold} (paid outside the caps, as when "
                    "first paid)",
                    "milestone",
                )
            )
    if milestones is None and len(forgotten) == len(state.forgotten):
        return state, partner_known, restored
    return (
        RuleState._trusted(
            state.purchase_count,
            state.cumulative_spend_minor,
            state.last_purchase_on,
            state.last_activity_on,
            state.latest_day,
            badges,
            state.partners_seen,
            state.milestones if milestones is None else _frozen(milestones),
            state.milestone_events if payers is None else _frozen(payers),
            state.streaks,
            state.challenges,
            state.counters,
            _frozen(forgotten),
            state.behaviour,
        ),
        partner_known,
        restored,
    )


def forget(
    forgotten: Mapping[str, tuple[int, int]],
    entries: Mapping[str, tuple[int, int]],
    lateness_seconds: int,
) -> Mapping[str, tuple[int, int]]:
    """``forgotten`` with a refund's ``entries`` (the later time wins on a key), entries a
    lateness window older than the newest refund dropped."""
    merged = dict(forgotten)
    for key, (refunded_at, points) in entries.items():
        old = merged.get(key)
        if old is None or old[0] <= refunded_at:
            merged[key] = (refunded_at, points)
    newest = max(entry[0] for entry in merged.values())
    return _frozen({k: v for k, v in merged.items() if v[0] + lateness_seconds >= newest})
