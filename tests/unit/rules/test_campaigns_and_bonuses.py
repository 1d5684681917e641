"""Campaigns (window and audience), reactivation of dormant customers, milestones and badges."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from points.rules import Profile, evaluate, load_ruleset
from tests.unit.rules.builders import at, make_ruleset, points_by_rule, profile, purchase, run

BASE = """
- id: everyday
  kind: base_rate
  points: 1
  per_minor: 100
"""

CAMPAIGNS = (
    BASE
    + """
- id: young
  kind: campaign
  window: {starts_at: "2026-09-01T00:00:00+08:00", ends_at: "2027-03-01T00:00:00+08:00"}
  audience: {age_below: 30}
  match: {mcc_groups: [dining, ecommerce]}
  extra_percent: 50
- id: newbie
  kind: campaign
  window: {starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2028-01-01T00:00:00+08:00"}
  audience: {joined_within_days: 90}
  extra_percent: 100
- id: long-tail
  kind: campaign
  window: {starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2028-01-01T00:00:00+08:00"}
  audience: {segments: [long_tail]}
  match: {mcc_groups: [groceries], min_amount_minor: 2000}
  fixed_points: 20
- id: sleepers
  kind: campaign
  window: {starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2028-01-01T00:00:00+08:00"}
  audience: {dormant_for_days: 180}
  extra_percent: 25
"""
)


@pytest.mark.parametrize(
    ("case", "who", "mcc", "amount", "when", "expected"),
    [
        ("young diner", {"birth_year": 1998}, "5812", 10_000, "2026-11-27", {"young": 50}),
        ("age 30 is not young", {"birth_year": 1996}, "5812", 10_000, "2026-11-27", {}),
        ("no birth year", {"birth_year": None}, "5812", 10_000, "2026-11-27", {}),
        ("young, wrong category", {"birth_year": 1998}, "5411", 10_000, "2026-11-27", {}),
        ("young, before window", {"birth_year": 1998}, "5812", 10_000, "2026-08-31", {}),
        (
            "young, window end excluded",
            {"birth_year": 1998},
            "5812",
            10_000,
            "2027-03-01T00:00:00",
            {},
        ),
        ("new customer", {"joined": "2026-10-01"}, "5411", 10_000, "2026-11-27", {"newbie": 100}),
        ("day 90 is no longer new", {"joined": "2026-08-29"}, "5411", 10_000, "2026-11-27", {}),
        (
            "long tail groceries",
            {"segment": "long_tail"},
            "5411",
            2_000,
            "2026-11-27",
            {"long-tail": 20},
        ),
        ("long tail, too small", {"segment": "long_tail"}, "5411", 1_999, "2026-11-27", {}),
        ("mass segment", {"segment": "mass"}, "5411", 5_000, "2026-11-27", {}),
        (
            "never bought, joined long ago",
            {"joined": "2025-01-01"},
            "5411",
            10_000,
            "2026-11-27",
            {"sleepers": 25},
        ),
    ],
)
def test_campaigns_fire_only_inside_their_window_for_their_audience(
    case: str, who: dict[str, object], mcc: str, amount: int, when: str, expected: dict[str, int]
) -> None:
    """Each campaign adds its bonus only when the window, audience and match all hold."""
    defaults: dict[str, object] = {"joined": "2020-01-01", "birth_year": 1985}
    person = profile(**{**defaults, **who})  # type: ignore[arg-type]
    rules = make_ruleset(CAMPAIGNS)
    # A recent purchase first, so only the "never bought" case counts as dormant.
    history = [] if case.startswith("never") else [purchase(100, when="2026-11-20")]
    *_, result = run(rules, [*history, purchase(amount, mcc=mcc, when=when)], person)
    bonuses = {k: v for k, v in points_by_rule(result).items() if k != "everyday"}
    assert bonuses == expected, case


def test_a_dormant_customer_is_one_without_a_purchase_for_n_days() -> None:
    """Dormancy counts days since the last purchase: 179 days is active, 180 is dormant."""
    rules = make_ruleset(CAMPAIGNS)
    first = purchase(10_000, when="2026-01-01")
    for gap, expected in ((179, {}), (180, {"sleepers": 25})):
        later = (at("2026-01-01") + timedelta(days=gap)).date().isoformat()
        _, result = run(rules, [first, purchase(10_000, when=later)])
        assert {k: v for k, v in points_by_rule(result).items() if k != "everyday"} == expected


def test_an_event_from_the_future_is_evaluated_as_of_now() -> None:
    """A producer cannot timestamp a purchase into a campaign window that has not opened."""
    rules = make_ruleset(CAMPAIGNS)
    event = purchase(10_000, mcc="5812", when="2026-09-02")
    young = profile(birth_year=1998)
    now = at("2026-08-15")
    state = run(rules, [purchase(1, when="2026-08-10")])[0].state
    result = evaluate(rules, event, young, state, now=now)
    assert "young" not in points_by_rule(result)
    assert any("later than now" in note for note in result.notes)


REACTIVATION = (
    BASE
    + """
- id: welcome-back
  kind: reactivation
  dormant_days: 90
  points: 500
  min_amount_minor: 5000
"""
)


@pytest.mark.parametrize(
    ("last_purchase", "amount", "bonus"),
    [
        ("2026-08-29", 5_000, 500),  # 90 days before 2026-11-27
        ("2026-08-30", 5_000, 0),  # 89 days
        ("2026-01-01", 4_999, 0),  # too small
        ("2026-01-01", 50_000, 500),
    ],
)
def test_reactivation_rewards_the_first_purchase_after_n_dormant_days(
    last_purchase: str, amount: int, bonus: int
) -> None:
    """A purchase at least dormant_days after the previous one earns the welcome-back bonus."""
    rules = make_ruleset(REACTIVATION)
    _, result = run(rules, [purchase(100, when=last_purchase), purchase(amount)])
    assert points_by_rule(result).get("welcome-back", 0) == bonus


def test_reactivation_then_immediate_second_purchase_earns_no_second_bonus() -> None:
    """Coming back resets dormancy: the next day's purchase is an ordinary one."""
    rules = make_ruleset(REACTIVATION)
    results = run(
        rules,
        [purchase(100, when="2026-01-01"), purchase(9_000), purchase(9_000, when="2026-11-28")],
    )
    assert [points_by_rule(r).get("welcome-back", 0) for r in results] == [0, 500, 0]


MILESTONES = (
    BASE
    + """
- id: first
  kind: milestone
  metric: purchase_count
  threshold: 1
  points: 100
  badge: first-swipe
- id: third
  kind: milestone
  metric: purchase_count
  threshold: 3
  points: 0
  badge: regular
- id: spend-500
  kind: milestone
  metric: cumulative_spend_minor
  threshold: 50000
  points: 1000
  badge: big-spender
"""
)


@pytest.mark.parametrize(
    ("amounts", "milestone_points", "badges"),
    [
        ([100], [100], [("first-swipe",)]),
        ([100, 100, 100], [100, 0, 0], [("first-swipe",), (), ("regular",)]),
        ([49_999, 1], [100, 1000], [("first-swipe",), ("big-spender",)]),
        ([60_000, 100], [1100, 0], [("first-swipe", "big-spender"), ()]),
        ([100, 100, 100, 100], [100, 0, 0, 0], [("first-swipe",), (), ("regular",), ()]),
    ],
)
def test_milestones_fire_once_when_purchase_count_or_cumulative_spend_reaches_them(
    amounts: list[int], milestone_points: list[int], badges: list[tuple[str, ...]]
) -> None:
    """Nth-purchase and cumulative-spend milestones award their points and badge exactly once."""
    results = run(make_ruleset(MILESTONES), [purchase(a) for a in amounts])
    got = [r.points - points_by_rule(r)["everyday"] for r in results]
    assert got == milestone_points
    assert [r.badges_awarded for r in results] == badges
    assert set(results[-1].state.badges) == {b for group in badges for b in group}


def test_a_customer_whose_profile_has_not_arrived_is_neither_new_dormant_nor_coming_back() -> None:
    """A purchase consumed before the customer's onboarding (coordinator's journey finding):
    with the default rules the unknown customer gets base points and first-swipe, not
    dormant-double and welcome-back as if they had been away since 1970."""
    default = load_ruleset(Path(__file__).resolve().parents[3] / "rules" / "default.yaml")
    event = purchase(12_345, mcc="5411", merchant_id="M-GROCER-01", when="2026-12-01")
    [unknown] = run(default, [event], who=Profile.unknown("c-1"))
    assert unknown.rule_ids == ("base-everyday", "first-swipe")
    assert unknown.points == 123 + 100
