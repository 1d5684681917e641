"""Campaign holdouts: a deterministic share of customers gets none of a campaign's points,
and what they would have earned is kept on the purchase's earning record."""

from __future__ import annotations

import pytest

from points.events import Purchase
from points.rules import (
    EarningRecord,
    Evaluation,
    RuleFileError,
    RuleSet,
    RuleState,
    clawback,
    evaluate,
)
from points.rules.holdout import BUCKETS, HoldoutSplit, holdout_bucket, in_holdout
from tests.unit.rules.builders import make_ruleset, profile, purchase, refund

RULES = """
- {id: everyday, kind: base_rate, points: 1, per_minor: 100}
- id: young
  kind: campaign
  window: {starts_at: "2026-09-01T00:00:00+08:00", ends_at: "2027-03-01T00:00:00+08:00"}
  audience: {age_below: 30}
  extra_percent: 50
  holdout_percent: 20
- id: groceries-bonus
  kind: campaign
  window: {starts_at: "2026-09-01T00:00:00+08:00", ends_at: "2027-03-01T00:00:00+08:00"}
  match: {mcc_groups: [groceries]}
  fixed_points: 30
  holdout_percent: 10
"""
CUSTOMERS = [f"c-{n:05d}" for n in range(4000)]


def _held(campaign: str, percent: int) -> list[str]:
    return [c for c in CUSTOMERS if in_holdout(campaign, c, percent)]


def _older_customer_buys(
    ruleset: RuleSet, customer: str, amount: int, mcc: str, event: Purchase | None = None
) -> Evaluation:
    event = event or purchase(amount, mcc=mcc, customer_id=customer)
    older = profile(customer_id=customer, birth_year=1970)
    return evaluate(ruleset, event, older, RuleState(), now=event.occurred_at)


def test_assignment_is_a_stable_hash_of_campaign_and_customer() -> None:
    """The same customer and campaign always give the same bucket (pinned values: a change
    of hash would silently move customers between groups mid-campaign)."""
    assert holdout_bucket("young", "c-00001") == holdout_bucket("young", "c-00001")
    pinned = {c: holdout_bucket("young", c) for c in ("c-00001", "c-00002", "c-00003")}
    assert pinned == {"c-00001": 9285, "c-00002": 1866, "c-00003": 2186}
    assert all(0 <= holdout_bucket("x", c) < BUCKETS for c in CUSTOMERS)
    split = HoldoutSplit("young", 20)
    assert [split.holds(c) for c in CUSTOMERS] == [in_holdout("young", c, 20) for c in CUSTOMERS]


def test_holdout_share_is_close_to_the_percent_and_independent_between_campaigns() -> None:
    """About P% of customers are held out, and two campaigns split customers independently."""
    young = set(_held("young", 20))
    groceries = set(_held("groceries-bonus", 20))
    assert abs(len(young) / len(CUSTOMERS) - 0.20) < 0.025
    assert abs(len(groceries) / len(CUSTOMERS) - 0.20) < 0.025
    both = len(young & groceries) / len(CUSTOMERS)
    assert abs(both - 0.04) < 0.015  # 20% of 20%: not the same customers


def test_holdout_customer_gets_no_campaign_points_but_the_record_keeps_them() -> None:
    """A young customer in the holdout earns the base points only; the evaluation, its notes
    and its earning record say what the campaign would have paid; treated customers get it."""
    ruleset = make_ruleset(RULES)
    held = _held("young", 20)[0]
    treated = next(c for c in CUSTOMERS if not in_holdout("young", c, 20))
    for customer, expect_line in ((held, False), (treated, True)):
        event = purchase(10_000, mcc="5812", customer_id=customer)
        result = evaluate(
            ruleset,
            event,
            profile(customer_id=customer, birth_year=2000),
            RuleState(),
            now=event.occurred_at,
        )
        if expect_line:
            assert result.rule_ids == ("everyday", "young")
            assert result.points == 150
            assert result.held_out == ()
            assert "held_out" not in result.record().to_json()
        else:
            assert result.rule_ids == ("everyday",)
            assert result.points == 100
            assert result.held_out == (("young", 50),)
            assert any("held out of campaign young" in note for note in result.notes)
            stored = result.record().to_json()
            assert stored["held_out"] == {"young": 50}
            assert EarningRecord.from_json(stored).held_out == {"young": 50}


def test_a_customer_outside_the_audience_is_in_no_group_of_that_campaign() -> None:
    """Holdout applies only where the campaign would have paid: an older customer held out by
    hash records nothing for the young campaign (it would not have paid them anyway)."""
    ruleset = make_ruleset(RULES)
    held = _held("young", 20)[0]
    result = _older_customer_buys(ruleset, held, 10_000, "5812")
    assert result.held_out == ()
    assert result.points == 100


def test_a_refund_keeps_the_held_out_record_and_claws_back_no_campaign_points() -> None:
    """A held-out customer's refund takes back base points only; the record keeps held_out."""
    ruleset = make_ruleset(RULES)
    held = next(c for c in CUSTOMERS if in_holdout("groceries-bonus", c, 10))
    event = purchase(5_000, mcc="5411", customer_id=held)
    result = _older_customer_buys(ruleset, held, 5_000, "5411", event)
    assert result.held_out == (("groceries-bonus", 30),)
    decision = clawback(ruleset, result.record(), refund(event, 5_000), result.state)
    assert sum(part.points for part in decision.parts) == 50
    assert decision.record.held_out == {"groceries-bonus": 30}


@pytest.mark.parametrize("bad", ["0", "51", "12.5", '"10"'])
def test_holdout_percent_is_validated(bad: str) -> None:
    """holdout_percent is a whole number from 1 to 50; anything else names the rule and field."""
    rules = RULES.replace("holdout_percent: 20", f"holdout_percent: {bad}")
    with pytest.raises(RuleFileError) as caught:
        make_ruleset(rules)
    assert "young" in str(caught.value)
    assert "holdout_percent" in str(caught.value)
