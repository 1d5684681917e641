"""Streaks (days or weeks, with grace), social actions, and the monthly categories challenge."""

from __future__ import annotations

import pytest

from tests.unit.rules.builders import (
    check_in,
    make_ruleset,
    opt_in,
    points_by_rule,
    purchase,
    run,
)

BASE = """
- id: everyday
  kind: base_rate
  points: 1
  per_minor: 100
"""

STREAKS = (
    BASE
    + """
- id: checkin-3
  kind: streak
  period: day
  length: 3
  grace_periods: 1
  counts: [check_in]
  points: 30
  badge: on-fire
- id: weekly-2
  kind: streak
  period: week
  length: 2
  counts: [purchase]
  min_amount_minor: 1000
  repeat: false
  points: 200
"""
)


@pytest.mark.parametrize(
    ("days", "awards"),
    [
        (["11-02", "11-03", "11-04"], [0, 0, 30]),
        (["11-02", "11-02", "11-03", "11-04"], [0, 0, 0, 30]),  # same day twice counts once
        (["11-02", "11-03", "11-05"], [0, 0, 30]),  # one missed day forgiven (grace 1)
        (["11-02", "11-03", "11-06", "11-07"], [0, 0, 0, 0]),  # two missed days: restart
        (["11-0" + str(d) for d in range(1, 7)], [0, 0, 30, 0, 0, 30]),  # repeats every 3
        (["11-03", "11-02"], [0, 0]),  # a late check-in counts by its day: 2 days, no bonus yet
    ],
)
def test_daily_check_in_streak_with_a_grace_day(days: list[str], awards: list[int]) -> None:
    """Consecutive check-in days earn the streak bonus every 3 days; one gap day is forgiven."""
    results = run(make_ruleset(STREAKS), [check_in(f"2026-{d}") for d in days])
    assert [points_by_rule(r).get("checkin-3", 0) for r in results] == awards


def test_a_streak_badge_is_awarded_once() -> None:
    """The first completed streak awards the badge; later ones award only points."""
    results = run(make_ruleset(STREAKS), [check_in(f"2026-11-0{d}") for d in range(1, 7)])
    assert [r.badges_awarded for r in results] == [(), (), ("on-fire",), (), (), ()]


@pytest.mark.parametrize(
    ("purchases", "awards"),
    [
        ([("2026-11-02", 1000), ("2026-11-09", 1000)], [0, 200]),  # Mon, next Mon
        ([("2026-11-08", 1000), ("2026-11-09", 1000)], [0, 200]),  # Sun then Mon: new week
        ([("2026-11-02", 1000), ("2026-11-08", 1000)], [0, 0]),  # same ISO week
        ([("2026-11-02", 1000), ("2026-11-16", 1000)], [0, 0]),  # a week missed, no grace
        ([("2026-11-02", 999), ("2026-11-09", 1000)], [0, 0]),  # too small to count
        ([("2026-11-02", 1000), ("2026-11-09", 1000), ("2026-11-16", 1000)], [0, 200, 0]),
    ],
)
def test_weekly_purchase_streak_counts_iso_weeks_and_fires_once_without_repeat(
    purchases: list[tuple[str, int]], awards: list[int]
) -> None:
    """A week streak counts Monday-to-Sunday weeks with a qualifying purchase; repeat=false."""
    results = run(make_ruleset(STREAKS), [purchase(a, when=w) for w, a in purchases])
    assert [points_by_rule(r).get("weekly-2", 0) for r in results] == awards


SOCIAL = (
    BASE
    + """
- {id: checkin, kind: social, action: check_in, points: 5, cap: {per_day: 5}}
- {id: join, kind: social, action: challenge_opt_in, points: 10, cap: {per_day: 10}}
- id: explorer
  kind: challenge
  target: 3
  period: month
  min_amount_minor: 2000
  requires_opt_in: true
  points: 300
  badge: explorer
- id: open-explorer
  kind: challenge
  target: 2
  period: week
  categories: [groceries, dining]
  points: 50
"""
)


def test_check_in_earns_once_a_day() -> None:
    """Check-ins earn 5 points; the cap makes a second one the same day worth nothing."""
    results = run(
        make_ruleset(SOCIAL), [check_in("2026-11-02T08:00:00"), check_in("2026-11-02T20:00:00")]
    )
    assert [r.points for r in results] == [5, 0]


@pytest.mark.parametrize(
    ("steps", "bonus_at"),
    [
        # join, then three categories in November -> bonus on the third
        ([("join", "11-01"), ("5411", "11-02"), ("5812", "11-03"), ("4121", "11-04")], 3),
        # no opt-in: purchases do not count
        ([("5411", "11-02"), ("5812", "11-03"), ("4121", "11-04")], None),
        # same category twice does not count twice
        ([("join", "11-01"), ("5411", "11-02"), ("5411", "11-03"), ("5812", "11-04")], None),
        # progress resets with the month (and the opt-in is per month)
        (
            [
                ("join", "11-01"),
                ("5411", "11-02"),
                ("5812", "11-30"),
                ("join", "12-01"),
                ("4121", "12-02"),
                ("5411", "12-03"),
                ("5812", "12-04"),
            ],
            6,
        ),
        # unclassified MCCs do not count
        ([("join", "11-01"), ("5411", "11-02"), ("5812", "11-03"), ("7299", "11-04")], None),
    ],
)
def test_three_categories_challenge_needs_opt_in_and_distinct_groups_in_one_month(
    steps: list[tuple[str, str]], bonus_at: int | None
) -> None:
    """The explorer challenge pays once per month after the third distinct MCC group."""
    events = [
        opt_in("explorer", f"2026-{day}")
        if what == "join"
        else purchase(2000, mcc=what, when=f"2026-{day}")
        for what, day in steps
    ]
    results = run(make_ruleset(SOCIAL), events)
    got = [i for i, r in enumerate(results) if points_by_rule(r).get("explorer")]
    assert got == ([] if bonus_at is None else [bonus_at])
    if bonus_at is not None:
        assert "explorer" in results[bonus_at].badges_awarded


def test_joining_a_challenge_earns_the_opt_in_points_and_unknown_challenges_are_noted() -> None:
    """An opt-in to a real challenge earns the social bonus; an unknown one is noted."""
    results = run(
        make_ruleset(SOCIAL), [opt_in("explorer", "2026-11-01"), opt_in("nope", "2026-11-02")]
    )
    assert results[0].points == 10
    assert results[0].state.challenges["explorer"].opted_in
    assert any("no enabled challenge 'nope'" in note for note in results[1].notes)


def test_a_challenge_restricted_to_categories_counts_only_those() -> None:
    """Only the listed categories count toward an open (no opt-in) weekly challenge."""
    events = [
        purchase(100, mcc="4121", when="2026-11-02"),
        purchase(100, mcc="5411", when="2026-11-03"),
        purchase(100, mcc="5812", when="2026-11-04"),
    ]
    results = run(make_ruleset(SOCIAL), events)
    assert [points_by_rule(r).get("open-explorer", 0) for r in results] == [0, 0, 50]
