"""Clawback: what a refund or reversal takes back from the points its original purchase earned.

The rule, line by line of the original award (:class:`~points.rules.records.EarningRecord`):

- ``proportional`` lines (base rate, co-brand multiplier, percentage campaigns) are taken back
  in proportion to the amount refunded so far. After refunds totalling R of an original amount
  A, the line has lost ``ceil(points * R / A)`` in all; each refund takes the difference from
  what earlier refunds took. Rounding up is in the bank's favour, the total can never exceed
  the line's points (R is capped at A), and a full refund takes back exactly everything.
- ``full_refund`` lines (first purchase at a partner, reactivation, fixed campaign bonuses,
  streak and challenge bonuses a purchase completed) are kept through partial refunds and taken
  back whole by the refund that makes the total refunded equal the original amount. A refunded
  first partner purchase also forgets the partner, so a purchase there made after the refund can
  earn it again (one made before it, processed after, cannot: points.rules.recall).
  Streak and challenge progress is not rewound (the bonus is not earned twice in one period).
- ``milestone`` lines are judged on the customer's state, not on this record: the refund lowers
  cumulative spend by the refunded amount and, when it completes a full refund, the purchase
  count by one; every milestone whose threshold is then no longer met is taken back (the points
  it actually awarded), its badge revoked, and it can be reached again later. The milestone may
  have been reached on another purchase than the refunded one: its points are taken back from
  *that* purchase's earning (the state remembers which event paid it), as a separate part, so
  the customer ends with what they would hold had the refunded amount never been spent, and
  holds a milestone's points at most once at any time. The state remembers what a refund took
  back with the refund's event time (``RuleState.forgotten``): a purchase made before the
  refund but processed after it restores the milestone (points.rules.recall). A milestone
  reached before the state named its payer (rule state format 1) and not paid by the refunded
  purchase cannot be traced to an earning: it stays reached (never paid twice) and the
  clawback says so (``untraced``), for the earning service to record as a refusal.
- ``kept`` lines (app activity) are never clawed back.

The refunded amount also lowers the customer's behaviour-profile spend, on the refund's own
day (points/rules/behaviour.py). A reversal always counts as a refund of everything not yet
refunded. Points clawed back do not
give cap room back. What the wallet cannot cover is the ledger's business (receivable debt).
"""

from __future__ import annotations

from dataclasses import dataclass

from points.events import Refund, Reversal
from points.rules.behaviour import EMPTY_BEHAVIOUR, Behaviour
from points.rules.errors import RefundMismatch
from points.rules.plan import plan_of
from points.rules.recall import MILESTONE, PARTNER, forget
from points.rules.records import EarningRecord, Line
from points.rules.ruleset import MilestoneRule, RuleSet
from points.rules.state import RuleState, _frozen, behaviour_of, copy_of

__all__ = ["ClawbackDecision", "ClawbackDecisionPart", "clawback", "proportional_clawback"]


@dataclass(frozen=True, slots=True)
class ClawbackDecisionPart:
    """Points to take back from one earning: the refunded purchase's own, or the earning of
    the purchase that paid a milestone the refund undoes. One ledger clawback each, so one
    part that cannot be posted never stops the others."""

    earning_event_id: str
    points: int
    rule_ids: tuple[str, ...]


@dataclass(frozen=True)
class ClawbackDecision:
    """Points to take back for one refund, why, and what to store afterwards.

    The rules *decide* what a refund takes back; the ledger's
    :class:`~points.ledger.model.Clawback` operation (one per :class:`ClawbackDecisionPart`)
    *posts* it. Hence the name, which also keeps the two apart where both are imported.
    """

    event_id: str
    original_event_id: str
    ruleset_version: str
    points: int
    lines: tuple[Line, ...]
    badges_revoked: tuple[str, ...]
    notes: tuple[str, ...]
    record: EarningRecord
    state: RuleState
    #: the lines grouped by the earning they come back from; the refunded purchase's first
    parts: tuple[ClawbackDecisionPart, ...] = ()
    #: milestones the refund undoes whose paying earning is unknown (see the module docstring)
    untraced: tuple[Line, ...] = ()

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(line.rule_id for line in self.lines)


def proportional_clawback(points: int, original_minor: int, refunded_total_minor: int) -> int:
    """Points lost in all after refunds totalling ``refunded_total_minor``: ceil, never > points."""
    if points < 0 or original_minor <= 0 or refunded_total_minor < 0:
        raise ValueError("points and amounts must be non-negative, the original positive")
    refunded = min(refunded_total_minor, original_minor)
    return -(-points * refunded // original_minor)


def clawback(
    ruleset: RuleSet, record: EarningRecord, refund: Refund | Reversal, state: RuleState
) -> ClawbackDecision:
    """Compute the clawback of ``record`` for ``refund``; pure, returns the new record and state.

    ``ruleset`` is the current one (milestone thresholds and badges are looked up in it; a
    milestone rule no longer in the rule set is left alone).
    """
    if refund.original_event_id != record.event_id:
        raise RefundMismatch(
            f"refund {refund.event_id} is for {refund.original_event_id}, not {record.event_id}"
        )
    if refund.customer_id != record.customer_id:
        raise RefundMismatch(
            f"refund {refund.event_id} is for customer {refund.customer_id}, "
            f"the original for {record.customer_id}"
        )
    if record.currency and refund.currency != record.currency:
        raise RefundMismatch(
            f"refund {refund.event_id} is in {refund.currency}, the original in {record.currency}"
        )

    notes: list[str] = []
    remaining = record.amount_minor - record.refunded_minor
    if isinstance(refund, Reversal):
        this_minor = remaining
    else:
        this_minor = min(refund.amount_minor, remaining)
        if refund.amount_minor > remaining:
            notes.append(
                f"refund of {refund.amount_minor} exceeds the {remaining} not yet refunded; "
                f"counted as {remaining}"
            )
    refunded_total = record.refunded_minor + this_minor
    completes = this_minor > 0 and refunded_total == record.amount_minor
    if this_minor == 0:
        notes.append("the original is already fully refunded; nothing to take back")

    lines: list[Line] = []
    clawed = dict(record.clawed)
    for line in record.lines:
        if line.clawback == "proportional":
            target = proportional_clawback(line.points, record.amount_minor, refunded_total)
            why = f"refund of {refunded_total} of {record.amount_minor} minor units, rounded up"
        elif line.clawback == "full_refund":
            target = line.points if refunded_total == record.amount_minor else 0
            why = "bonus void: the purchase was refunded in full"
        else:
            continue
        delta = target - clawed.get(line.rule_id, 0)
        if delta > 0:
            clawed[line.rule_id] = target
            lines.append(Line(line.rule_id, line.kind, delta, why, line.clawback))

    partners_seen = state.partners_seen
    first_partner_void = any(
        line.kind == "first_partner_purchase" and line.clawback == "full_refund" for line in lines
    )
    # What the refund makes the rules forget, with its event time (points.rules.recall).
    forgets: dict[str, tuple[int, int]] = {}
    if first_partner_void and record.partner_id is not None:
        partners_seen = partners_seen - {record.partner_id}
        forgets[PARTNER + record.partner_id] = (int(refund.occurred_at.timestamp()), 0)
    purchase_count = max(0, state.purchase_count - 1) if completes else state.purchase_count
    cumulative_spend_minor = max(0, state.cumulative_spend_minor - this_minor)

    # Milestones are looked up in the compiled plan (RuleSet.rule reads a pydantic private
    # attribute, slow on this path), and the next state is built once, not replaced twice.
    plan = plan_of(ruleset)
    by_id = plan.by_id
    milestones = state.milestones
    payers = state.milestone_events
    kept_milestones: dict[str, int] | None = None  # a copy, made when one is taken back
    kept_payers: dict[str, str] | None = None
    badges = state.badges
    revoked: list[str] = []
    # earning event id -> the milestone lines taken back from it
    elsewhere: dict[str, list[Line]] = {}
    untraced: list[Line] = []
    for rule_id, awarded in sorted(state.milestones.items()):
        rule = by_id.get(rule_id)
        if not isinstance(rule, MilestoneRule):
            continue
        value = purchase_count if rule.metric == "purchase_count" else cumulative_spend_minor
        if value >= rule.threshold:
            continue
        line = Line(
            rule_id,
            rule.kind,
            awarded,
            f"milestone no longer met: {rule.metric} is {value} < {rule.threshold}",
            "milestone",
        )
        payer = payers.get(rule_id) or _paid_by_record(record, rule_id, awarded)
        if payer is None and awarded > 0:
            # Reached before the state named its payer, on another purchase: kept reached
            # (so never paid twice); the earning service records why it was not taken back.
            untraced.append(line)
            notes.append(f"milestone {rule_id}: the purchase that paid it is not known")
            continue
        if kept_milestones is None:
            kept_milestones = copy_of(milestones)
            kept_payers = copy_of(payers)
        del kept_milestones[rule_id]
        assert kept_payers is not None
        kept_payers.pop(rule_id, None)
        forgets[MILESTONE + rule_id] = (int(refund.occurred_at.timestamp()), awarded)
        if awarded > 0:
            lines.append(line)
            if payer is not None and payer != record.event_id:
                elsewhere.setdefault(payer, []).append(line)
        if rule.badge is not None and rule.badge in badges:
            badges = badges - {rule.badge}
            revoked.append(rule.badge)
    next_state = RuleState._trusted(
        purchase_count,
        cumulative_spend_minor,
        state.last_purchase_on,
        state.last_activity_on,
        state.latest_day,
        badges,
        partners_seen,
        milestones if kept_milestones is None else _frozen(kept_milestones),
        payers if kept_payers is None else _frozen(kept_payers),
        state.streaks,
        state.challenges,
        state.counters,
        forget(state.forgotten, forgets, plan.lateness_seconds) if forgets else state.forgotten,
        _behaviour_after(ruleset, state, refund, this_minor),
    )

    new_record = EarningRecord(
        event_id=record.event_id,
        customer_id=record.customer_id,
        ruleset_version=record.ruleset_version,
        amount_minor=record.amount_minor,
        currency=record.currency,
        partner_id=record.partner_id,
        lines=record.lines,
        refunded_minor=refunded_total,
        clawed=clawed,
        held_out=record.held_out,
    )
    moved = {id(line) for taken in elsewhere.values() for line in taken}
    own = [line for line in lines if id(line) not in moved]
    parts = [_part(record.event_id, own)] if own else []
    parts += [_part(payer, taken) for payer, taken in elsewhere.items()]
    return ClawbackDecision(
        event_id=refund.event_id,
        original_event_id=record.event_id,
        ruleset_version=ruleset.version,
        points=sum(line.points for line in lines),
        lines=tuple(lines),
        badges_revoked=tuple(revoked),
        notes=tuple(notes),
        record=new_record,
        state=next_state,
        parts=tuple(parts),
        untraced=tuple(untraced),
    )


def _behaviour_after(
    ruleset: RuleSet, state: RuleState, refund: Refund | Reversal, refunded_minor: int
) -> Behaviour:
    """The behaviour profile after the refund: spend lower on the refund's own day (in the
    rule set's zone), frequency and recency unchanged (points/rules/behaviour.py)."""
    behaviour = behaviour_of(state)
    if refunded_minor <= 0 or behaviour is EMPTY_BEHAVIOUR:
        return behaviour
    day = refund.occurred_at.astimezone(plan_of(ruleset).zone).date().toordinal()
    return behaviour.with_refund(day, refunded_minor)


def _part(earning_event_id: str, lines: list[Line]) -> ClawbackDecisionPart:
    return ClawbackDecisionPart(
        earning_event_id,
        sum(line.points for line in lines),
        tuple(line.rule_id for line in lines),
    )


def _paid_by_record(record: EarningRecord, rule_id: str, awarded: int) -> str | None:
    """The refunded purchase, when its own record shows it paid the milestone (for a state
    that does not name payers); else None."""
    for line in record.lines:
        if line.rule_id == rule_id and line.clawback == "milestone" and line.points == awarded:
            return record.event_id
    return None
