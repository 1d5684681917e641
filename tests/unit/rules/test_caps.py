"""Caps per transaction, day and month: overall and per rule; cut in line order, never exceeded."""

from __future__ import annotations

import pytest

from tests.unit.rules.builders import make_ruleset, points_by_rule, purchase, run, share

RULES = """
- id: everyday
  kind: base_rate
  points: 1
  per_minor: 100
- id: promo
  kind: campaign
  window: {starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2028-01-01T00:00:00+08:00"}
  extra_percent: 100
  cap: {per_day: 150, per_month: 400}
"""


@pytest.mark.parametrize(
    ("caps", "purchases", "totals"),
    [
        # per transaction: 1000 base, cut to 300 (base first, so the promo gets nothing)
        ("{per_transaction: 300}", [(100_000, "2026-11-02")], [300]),
        # per day: 500 a day; the second purchase the same day gets what is left
        ("{per_day: 500}", [(30_000, "2026-11-02"), (30_000, "2026-11-02")], [450, 50]),
        # a new day opens new room
        ("{per_day: 500}", [(30_000, "2026-11-02"), (30_000, "2026-11-03")], [450, 450]),
        # per month: 1000 a month, the third day's purchase is cut, next month is fresh
        (
            "{per_month: 1000}",
            [
                (30_000, "2026-11-02"),
                (30_000, "2026-11-03"),
                (30_000, "2026-11-04"),
                (30_000, "2026-12-01"),
            ],
            [450, 450, 100, 450],
        ),
    ],
)
def test_overall_caps_limit_points_per_transaction_day_and_month(
    caps: str, purchases: list[tuple[int, str]], totals: list[int]
) -> None:
    """The rule set's caps cut each award to the room left in the transaction, day and month."""
    rules = make_ruleset(RULES, top=f"caps: {caps}\n")
    results = run(rules, [purchase(amount, when=when) for amount, when in purchases])
    assert [r.points for r in results] == totals


@pytest.mark.parametrize(
    ("purchases", "promo_points"),
    [
        ([(10_000, "2026-11-02")], [100]),
        ([(10_000, "2026-11-02"), (10_000, "2026-11-02")], [100, 50]),  # per_day 150
        (
            [(30_000, "2026-11-02"), (30_000, "2026-11-03"), (30_000, "2026-11-04")],
            [150, 150, 100],
        ),  # per_month 400
    ],
)
def test_a_rule_cap_limits_only_that_rule(
    purchases: list[tuple[int, str]], promo_points: list[int]
) -> None:
    """A rule's own cap stops its bonus while the base rate keeps earning in full."""
    results = run(make_ruleset(RULES), [purchase(a, when=w) for a, w in purchases])
    assert [points_by_rule(r)["promo"] for r in results] == promo_points
    assert [points_by_rule(r)["everyday"] for r in results] == [a // 100 for a, _ in purchases]


def test_days_are_counted_in_the_rule_set_time_zone() -> None:
    """23:30 UTC is already the next day in Beijing, so it gets a fresh daily cap."""
    rules = make_ruleset(RULES, top="caps: {per_day: 500}\n")
    results = run(
        rules,
        [
            purchase(50_000, when="2026-11-02T12:00:00"),
            purchase(50_000, when="2026-11-02T23:30:00Z"),
        ],
    )
    assert [r.points for r in results] == [500, 500]


def test_a_late_event_older_than_the_counter_window_gets_no_capped_points() -> None:
    """Counters are kept 31 days; an event older than that finds its day's cap used up."""
    rules = make_ruleset(RULES, top="caps: {per_day: 500}\n")
    results = run(rules, [purchase(10_000, when="2026-11-30"), purchase(10_000, when="2026-10-01")])
    assert results[1].points == 0
    assert all("capped" in line.explanation for line in results[1].lines)


def test_social_actions_stop_earning_at_their_daily_cap() -> None:
    """Three shares a day earn; the fourth is capped to 0, the next day earns again."""
    rules = make_ruleset(
        RULES + "- {id: share, kind: social, action: share, points: 10, cap: {per_day: 30}}\n"
    )
    days = ["2026-11-02"] * 4 + ["2026-11-03"]
    results = run(rules, [share(d) for d in days])
    assert [r.points for r in results] == [10, 10, 10, 0, 10]
    assert results[3].rule_ids == ("share",)


@pytest.mark.parametrize("activity_first", [True, False], ids=["share-first", "share-last"])
def test_overall_caps_neither_cut_nor_count_app_activity(activity_first: bool) -> None:
    """docs/rules.md "Caps": the overall caps limit purchases only. With a day cap of 500, a
    share still earns its 10 after the purchases used the whole day, and purchases consumed
    after a share still have all 500: the same points in either order (two topics, no order
    between them)."""
    rules = make_ruleset(
        RULES + "- {id: share, kind: social, action: share, points: 10, cap: {per_day: 30}}\n",
        top="caps: {per_day: 500}\n",
    )
    card = [purchase(30_000, when="2026-11-02"), purchase(30_000, when="2026-11-02")]
    app = share("2026-11-02")
    results = run(rules, [app, *card] if activity_first else [*card, app])
    shared, bought = (results[0], results[1:]) if activity_first else (results[-1], results[:-1])
    assert shared.points == 10
    assert [r.points for r in bought] == [450, 50]
