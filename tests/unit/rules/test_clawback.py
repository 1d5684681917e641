"""Refunds and reversals claw back exactly what the original purchase earned."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from points.events import Purchase
from points.rules import (
    EarningRecord,
    RefundMismatch,
    RuleState,
    clawback,
    proportional_clawback,
)
from tests.unit.rules.builders import make_ruleset, purchase, refund, reversal, run

RULES = make_ruleset(
    """
- id: everyday
  kind: base_rate
  points: 1
  per_minor: 100
- id: ride-x3
  kind: partner_multiplier
  partners: [ridehail]
  multiplier_percent: 300
- id: first-ride
  kind: first_partner_purchase
  partners: [ridehail]
  points: 200
- id: first
  kind: milestone
  metric: purchase_count
  threshold: 1
  points: 100
  badge: first-swipe
- id: spend-100
  kind: milestone
  metric: cumulative_spend_minor
  threshold: 10000
  points: 1000
  badge: big
"""
)


@pytest.mark.parametrize(
    ("points", "original", "refunds", "clawed"),
    [
        (100, 10_000, [10_000], [100]),  # full refund takes everything
        (100, 10_000, [5_000, 5_000], [50, 50]),
        (100, 10_000, [3_333, 3_333, 3_334], [34, 33, 33]),  # ceil per cumulative total
        (7, 10_000, [1, 1, 9_998], [1, 0, 6]),  # rounding up never exceeds 7 in total
        (7, 10_000, [20_000], [7]),  # an over-refund counts as the full amount
        (0, 10_000, [10_000], [0]),
        (1_000_000, 3, [1, 1, 1], [333_334, 333_333, 333_333]),
    ],
)
def test_proportional_clawback_is_cumulative_rounds_up_and_totals_exactly_the_points(
    points: int, original: int, refunds: list[int], clawed: list[int]
) -> None:
    """Each refund takes ceil(points * refunded so far / original) minus what was taken before."""
    taken = 0
    refunded = 0
    got = []
    for amount in refunds:
        refunded += amount
        total = proportional_clawback(points, original, refunded)
        got.append(total - taken)
        taken = total
    assert got == clawed
    assert taken <= points


def _earn(amount: int, **kwargs: str) -> tuple[Purchase, EarningRecord, RuleState]:
    event = purchase(amount, **kwargs)
    [result] = run(RULES, [event])
    return event, result.record(), result.state


def test_a_full_refund_takes_back_base_multiplier_first_partner_and_invalidated_milestones() -> (
    None
):
    """Everything the purchase earned comes back, milestone badges are revoked."""
    event, record, state = _earn(20_000, merchant_id="M-RIDE", mcc="4121")
    assert record.points == 200 + 400 + 200 + 100 + 1000
    result = clawback(RULES, record, refund(event, 20_000), state)
    assert result.points == record.points
    assert dict((line.rule_id, line.points) for line in result.lines) == {
        "everyday": 200,
        "ride-x3": 400,
        "first-ride": 200,
        "first": 100,
        "spend-100": 1000,
    }
    assert set(result.badges_revoked) == {"first-swipe", "big"}
    assert result.state.purchase_count == 0
    assert result.state.cumulative_spend_minor == 0
    assert "ridehail" not in result.state.partners_seen
    assert result.state.milestones == {}


def test_partial_refunds_keep_fixed_bonuses_until_the_last_one() -> None:
    """Partial refunds take proportional points; the first-partner bonus goes with the last."""
    event, record, state = _earn(20_000, merchant_id="M-RIDE", mcc="4121")
    first = clawback(RULES, record, refund(event, 5_000), state)
    assert {line.rule_id: line.points for line in first.lines} == {"everyday": 50, "ride-x3": 100}
    # cumulative spend 15000 still meets the 10000 milestone: kept
    assert first.state.milestones.keys() == {"first", "spend-100"}
    second = clawback(RULES, first.record, refund(event, 6_000), first.state)
    # spend falls to 9000 < 10000: the spend milestone goes
    assert {line.rule_id: line.points for line in second.lines} == {
        "everyday": 60,
        "ride-x3": 120,
        "spend-100": 1000,
    }
    third = clawback(RULES, second.record, refund(event, 9_000), second.state)
    assert {line.rule_id: line.points for line in third.lines} == {
        "everyday": 90,
        "ride-x3": 180,
        "first-ride": 200,
        "first": 100,
    }
    total = first.points + second.points + third.points
    assert total == record.points
    again = clawback(RULES, third.record, refund(event, 1_000), third.state)
    assert again.points == 0
    assert any("already fully refunded" in note for note in again.notes)


def test_a_reversal_takes_back_everything_not_yet_refunded() -> None:
    """A reversal counts as a refund of whatever amount is still unrefunded."""
    event, record, state = _earn(10_000)
    part = clawback(RULES, record, refund(event, 2_500), state)
    rest = clawback(RULES, part.record, reversal(event), part.state)
    assert part.points + rest.points == record.points
    assert rest.record.refunded_minor == 10_000


def test_a_milestone_reached_by_a_later_purchase_goes_when_an_earlier_one_is_refunded() -> None:
    """Milestones are judged on the state after the refund, whichever purchase reached them."""
    a = purchase(6_000)
    b = purchase(6_000)
    first, second = run(RULES, [a, b])
    assert "spend-100" in second.rule_ids
    result = clawback(RULES, first.record(), refund(a, 6_000), second.state)
    # spend falls to 6000 < 10000; one purchase is left, so 'first' still holds
    assert {line.rule_id: line.points for line in result.lines} == {
        "everyday": 60,
        "spend-100": 1000,
    }
    assert result.state.cumulative_spend_minor == 6_000
    assert "spend-100" not in result.state.milestones
    assert "big" in result.badges_revoked
    # the milestone's 1000 come back from b, the purchase that paid them, as their own part
    assert [(p.earning_event_id, p.points, p.rule_ids) for p in result.parts] == [
        (a.event_id, 60, ("everyday",)),
        (b.event_id, 1000, ("spend-100",)),
    ]


def test_a_full_refund_undoing_first_swipe_paid_by_the_refunded_purchase_takes_it_from_there() -> (
    None
):
    """Issue 12 finding 2: a (first-swipe) and b; a refunded: b still counts, the milestone
    stays; b refunded: no purchase left, first-swipe comes back from a's earning, b's own part
    asks only for what b earned."""
    a = purchase(5_000)
    b = purchase(2_000)
    first, second = run(RULES, [a, b])
    after_a = clawback(RULES, first.record(), refund(a, 5_000), second.state)
    assert [(p.earning_event_id, p.points) for p in after_a.parts] == [(a.event_id, 50)]
    assert after_a.state.milestone_events == {"first": a.event_id}
    after_b = clawback(RULES, second.record(), refund(b, 2_000), after_a.state)
    assert [(p.earning_event_id, p.points) for p in after_b.parts] == [
        (b.event_id, 20),
        (a.event_id, 100),
    ]
    assert after_b.state.milestones == {} and after_b.state.milestone_events == {}
    [again] = run(RULES, [purchase(3_000)], state=after_b.state)
    assert again.rule_ids == ("everyday", "first")  # reached again: held once, not twice


def test_a_milestone_whose_payer_is_unknown_is_kept_and_reported() -> None:
    """A state stored before milestones named their payer: a refund undoing a milestone that
    the refunded purchase did not pay cannot take it back; it stays reached (never paid
    twice) and the clawback lists it as untraced."""
    a = purchase(5_000)
    b = purchase(2_000)
    first, second = run(RULES, [a, b])
    legacy = second.state.to_json() | {"format": 1}
    del legacy["milestone_events"]
    state = RuleState.from_json(legacy)
    after_a = clawback(RULES, first.record(), refund(a, 5_000), state)
    after_b = clawback(RULES, second.record(), refund(b, 2_000), after_a.state)
    assert [(p.earning_event_id, p.points) for p in after_b.parts] == [(b.event_id, 20)]
    assert [(line.rule_id, line.points) for line in after_b.untraced] == [("first", 100)]
    assert after_b.state.milestones == {"first": 100}
    [again] = run(RULES, [purchase(3_000)], state=after_b.state)
    assert "first" not in again.rule_ids


step = st.tuples(
    st.sampled_from(["buy", "buy", "refund", "partial"]),
    st.integers(min_value=100, max_value=9_000),
    st.integers(min_value=0, max_value=1_000),
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_no_clawback_part_asks_an_earning_for_more_than_it_has_left_and_milestones_net_once(
    steps: list[tuple[str, int, int]],
) -> None:
    """Over random purchases and (partial) refunds, as the ledger would see them: every part
    fits in what its earning has left (never ``clawback_exceeds_earning``), and each milestone
    is held (paid minus taken back) once exactly when its threshold is met, else not at all."""
    state = RuleState()
    earned: dict[str, int] = {}  # earning event id -> points left in the ledger
    records: dict[str, EarningRecord] = {}  # purchase event id -> what it earned, as refunded
    events = {}
    held = {"first": 0, "spend-100": 0}
    for n, (kind, amount, pick) in enumerate(steps):
        when = f"2026-11-{1 + n % 28:02d}T10:00:00"
        if kind == "buy" or not records:
            event = purchase(amount, when=when)
            [result] = run(RULES, [event], state=state)
            state = result.state
            records[event.event_id] = result.record()
            events[event.event_id] = event
            earned[event.event_id] = result.points
            for line in result.lines:
                if line.rule_id in held:
                    held[line.rule_id] += line.points
            continue
        original = sorted(records)[pick % len(records)]
        record = records[original]
        left = record.amount_minor - record.refunded_minor
        size = max(1, left if kind == "refund" else left // 2)  # 1 more than left: counted as 0
        taken = clawback(RULES, record, refund(events[original], size), state)
        for part in taken.parts:
            assert part.points <= earned[part.earning_event_id]
            earned[part.earning_event_id] -= part.points
        for line in taken.lines:
            if line.rule_id in held:
                held[line.rule_id] -= line.points
        records[original] = taken.record
        state = taken.state
        assert taken.untraced == ()
    assert held["first"] == (100 if state.purchase_count >= 1 else 0)
    assert held["spend-100"] == (1000 if state.cumulative_spend_minor >= 10_000 else 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"original_event_id": "someone-else"}, "is for someone-else"),
        ({"customer_id": "c-2"}, "customer c-2"),
        ({"currency": "USD"}, "in USD"),
    ],
)
def test_a_refund_that_does_not_belong_to_the_record_is_refused(
    change: dict[str, str], message: str
) -> None:
    """Clawback checks the original event id, the customer and the currency."""
    event, record, state = _earn(10_000)
    bad = refund(event, 1_000).model_copy(update=change)
    with pytest.raises(RefundMismatch, match=message):
        clawback(RULES, record, bad, state)


def test_an_earning_record_round_trips_through_json() -> None:
    """The record the worker stores for later refunds survives to_json/from_json exactly."""
    event, record, state = _earn(20_000, merchant_id="M-RIDE", mcc="4121")
    part = clawback(RULES, record, refund(event, 5_000), state)
    for rec in (record, part.record):
        assert EarningRecord.from_json(rec.to_json()) == rec
