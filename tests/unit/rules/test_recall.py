"""A purchase made before a refund but processed after it (model finding M6).

A refund that arrives before its purchase is applied right after the purchase, so another
purchase made between the two (event time) can be processed after the refund. It earns what
event-time order gives: the partner the refund forgot and the milestone it took back were
still held when it was made (docs/rules.md §4; points.rules.recall)."""

from __future__ import annotations

import pytest

from points.events import Purchase
from points.rules import Evaluation, RuleState, clawback
from points.rules.ruleset import RuleSet
from tests.unit.rules.builders import make_ruleset, points_by_rule, purchase, refund, run
from tests.unit.rules.test_clawback import RULES

#: the same rules with a per-transaction cap that a large purchase's base rate fills
CAPPED = make_ruleset(
    """
- id: everyday
  kind: base_rate
  points: 1
  per_minor: 100
- id: first
  kind: milestone
  metric: purchase_count
  threshold: 1
  points: 100
  badge: first-swipe
""",
    top="caps: {per_transaction: 150}\n",
)


def _refunded(rules: RuleSet, first: Purchase, refunded_on: str) -> RuleState:
    """The state after ``first`` and its full refund made on ``refunded_on``."""
    [earned] = run(rules, [first])
    result = clawback(rules, earned.record(), refund(first, first.amount_minor, when=refunded_on),
                      earned.state)  # fmt: skip
    assert result.points == earned.points  # everything came back
    return result.state


def _then(rules: RuleSet, state: RuleState, event: Purchase) -> Evaluation:
    [result] = run(rules, [event], state=state)
    return result


def test_a_partner_purchase_made_before_the_refund_does_not_earn_first_partner_again() -> None:
    """First ride on 27 Nov, refunded in full on 1 Dec; a ride made on 29 Nov, processed after
    the refund, was made while the partner was known: no first-ride, and the partner stays
    forgotten, so a ride made on 2 Dec earns it."""
    state = _refunded(RULES, purchase(2_000, merchant_id="M-RIDE", when="2026-11-27"), "2026-12-01")
    assert "ridehail" not in state.partners_seen

    before = _then(RULES, state, purchase(1_000, merchant_id="M-RIDE", when="2026-11-29"))
    assert "first-ride" not in points_by_rule(before)
    assert "ridehail" not in before.state.partners_seen

    after = _then(RULES, before.state, purchase(1_000, merchant_id="M-RIDE", when="2026-12-02"))
    assert points_by_rule(after)["first-ride"] == 200
    assert "ridehail" in after.state.partners_seen


def test_a_purchase_made_before_the_refund_restores_the_milestone_outside_the_caps() -> None:
    """first (purchase count 1) is taken back by the refund; a purchase made before the refund
    keeps the count at 1: first's 100 come back on it outside the 150-point transaction cap
    that its base rate fills (they counted against the caps when first paid), with the badge,
    and a refund of this purchase takes them from it."""
    state = _refunded(CAPPED, purchase(2_000, when="2026-11-27"), "2026-12-01")
    assert state.milestones == {} and "first-swipe" not in state.badges

    late = purchase(20_000, when="2026-11-29")
    result = _then(CAPPED, state, late)
    assert points_by_rule(result) == {"everyday": 150, "first": 100}
    assert result.points == 250
    assert result.badges_awarded == ("first-swipe",)
    assert result.state.milestones == {"first": 100}
    assert result.state.milestone_events == {"first": late.event_id}
    assert "first-swipe" in result.state.badges
    assert result.state.forgotten == {}  # restored: nothing left to recall

    undone = clawback(CAPPED, result.record(), refund(late, 20_000), result.state)
    assert undone.points == 250
    assert [part.earning_event_id for part in undone.parts] == [late.event_id]


def test_a_purchase_made_after_the_refund_reaches_the_milestone_again_under_the_caps() -> None:
    """Made after the refund, a purchase earns as usual: first is reached again as a new
    milestone line, cut by the transaction cap like any other."""
    state = _refunded(CAPPED, purchase(2_000, when="2026-11-27"), "2026-12-01")
    result = _then(CAPPED, state, purchase(20_000, when="2026-12-02"))
    assert points_by_rule(result) == {"everyday": 150, "first": 0}
    assert result.state.milestones == {"first": 0}


def test_what_a_refund_forgot_round_trips_and_is_dropped_after_the_lateness_window() -> None:
    """The state keeps each forgotten item with the refund's event time (JSON key
    ``forgotten``, absent when empty); a purchase processed more than the lateness window
    (72 h) after the refund drops it."""
    state = _refunded(RULES, purchase(20_000, merchant_id="M-RIDE", when="2026-11-27"),
                      "2026-12-01")  # fmt: skip
    assert set(state.forgotten) == {"partner:ridehail", "milestone:first", "milestone:spend-100"}
    assert state.forgotten["milestone:spend-100"][1] == 1000
    assert RuleState.from_json(state.to_json()) == state
    assert "forgotten" not in RuleState().to_json()

    later = _then(RULES, state, purchase(100, when="2026-12-05"))
    assert later.state.forgotten == {}
    assert RuleState.from_json(later.state.to_json()) == later.state


def test_a_malformed_forgotten_entry_is_refused() -> None:
    """A stored state whose ``forgotten`` is not {key: [time, points]} does not load."""
    raw = RuleState().to_json()
    with pytest.raises(ValueError, match="forgotten"):
        RuleState.from_json({**raw, "forgotten": {"partner:x": "soon"}})
