"""Streaks are decided by event time (issue 12 finding 6, DESIGN §8).

An event that arrives late, within the rule file's lateness window (``lateness_hours``,
at least 72), counts exactly as if it had arrived in order: the streak length and every bonus
are a function of the set of active periods. A bonus already paid is never paid again; a
bonus in-order arrival would have paid is paid by the late event that completes the streak.
An event older than the streak remembers is not counted and says so (``too_late_for``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from points.rules import EarningEvent, Evaluation, RuleFileError, RuleState
from tests.unit.rules.builders import at, check_in, make_ruleset, purchase, run

RULES = make_ruleset(
    """
- {id: everyday, kind: base_rate, points: 1, per_minor: 100}
- {id: daily-checkin, kind: social, action: check_in, points: 5, cap: {per_day: 5}}
- id: checkin-week
  kind: streak
  period: day
  length: 7
  grace_periods: 1
  counts: [check_in]
  points: 70
  badge: week-warrior
- id: weekly-habit
  kind: streak
  period: week
  length: 4
  counts: [purchase]
  min_amount_minor: 1000
  points: 200
- id: once
  kind: streak
  period: day
  length: 3
  counts: [check_in]
  repeat: false
  points: 30
"""
)


def _total(results: list[Evaluation], rule_id: str | None = None) -> int:
    if rule_id is None:
        return sum(r.points for r in results)
    return sum(line.points for r in results for line in r.lines if line.rule_id == rule_id)


def test_day_one_arriving_after_day_two_across_midnight_still_completes_the_week() -> None:
    """The issue's case: day 1 (23:59:58) arrives after day 2 (00:00:03); 7 days, one bonus."""
    days = [
        check_in("2026-11-02T00:00:03"),
        check_in("2026-11-01T23:59:58"),
        *(check_in(f"2026-11-0{d}T09:00:00") for d in range(3, 8)),
    ]
    results = run(RULES, days)
    assert _total(results, "checkin-week") == 70
    assert results[-1].badges_awarded == ("week-warrior",)
    assert results[-1].state.streaks["checkin-week"].length == 7


def test_a_late_day_that_completes_a_streak_pays_the_bonus_on_the_late_event() -> None:
    """Days 2 and 3 arrive first (no 3-day bonus yet); day 1 arrives last and completes the
    run: the bonus comes with the late check-in."""
    days = [check_in("2026-11-02T09:00:00"), check_in("2026-11-03T09:00:00")]
    results = run(RULES, [*days, check_in("2026-11-01T09:00:00")])
    assert [line.points for line in results[-1].lines if line.rule_id == "once"] == [30]
    assert _total(results[:-1], "once") == 0


def test_a_late_day_never_pays_a_bonus_twice() -> None:
    """Seven days in order pay 70; a late check-in for a day already counted pays nothing more,
    and a late day filling a grace gap pays only what in-order arrival would."""
    in_order = [check_in(f"2026-11-{d:02d}T09:00:00") for d in (1, 2, 3, 5, 6, 7, 8)]
    results = run(RULES, [*in_order, check_in("2026-11-03T20:00:00")])
    assert _total(results, "checkin-week") == 70
    late_gap = run(RULES, [*in_order, check_in("2026-11-04T09:00:00")])
    sorted_gap = run(RULES, sorted([*in_order, check_in("2026-11-04T09:00:00")], key=_when))
    assert _total(late_gap, "checkin-week") == _total(sorted_gap, "checkin-week") == 70


def test_weekly_purchase_streak_counts_a_late_purchase_of_an_earlier_week() -> None:
    """Weeks 1, 3, 4 arrive, then week 2's purchase (Sunday 23:59, seconds before week 3's):
    four weeks in a row, one bonus, on the late purchase."""
    results = run(
        RULES,
        [
            purchase(1000, when="2026-11-02T10:00:00"),
            purchase(1000, when="2026-11-16T00:00:05"),
            purchase(1000, when="2026-11-23T10:00:00"),
            purchase(1000, when="2026-11-15T23:59:50"),
        ],
    )
    assert [r.points - 10 for r in results] == [0, 0, 0, 200]


def test_a_repeat_false_streak_pays_once_whatever_the_order() -> None:
    """``repeat: false`` pays once per customer; joining two completed runs with a late day
    does not pay again."""
    days = ["11-01", "11-02", "11-03", "11-05", "11-06", "11-07", "11-04"]
    results = run(RULES, [check_in(f"2026-{d}T09:00:00") for d in days])
    assert _total(results, "once") == 30


def test_an_event_older_than_the_streak_remembers_is_not_counted_and_says_why() -> None:
    """With the default 72 h window a day stays in the streak's memory for 4 days behind the
    newest one; a check-in 12 days late is not counted and is reported as too late."""
    days = [check_in(f"2026-11-{d:02d}T09:00:00") for d in range(2, 16)]
    late = check_in("2026-11-01T09:00:00")
    results = run(RULES, [*days, late])
    assert results[-1].too_late_for == ("checkin-week", "once")
    assert results[-1].state.streaks == results[-2].state.streaks
    assert results[-1].points == 5  # the check-in itself still earns (its day is kept)
    assert all(r.too_late_for == () for r in results[:-1])


def test_the_lateness_window_is_set_in_the_rule_file_and_at_least_72_hours() -> None:
    """``lateness_hours`` widens how far back a streak remembers; below 72 it is refused."""
    wide = make_ruleset(
        """
- id: checkin-week
  kind: streak
  period: day
  length: 7
  counts: [check_in]
  points: 70
""",
        top="lateness_hours: 240\n",
    )
    days = [check_in(f"2026-11-{d:02d}T09:00:00") for d in range(2, 11)]
    results = run(wide, [*days, check_in("2026-11-01T09:00:00")])
    assert results[-1].too_late_for == ()
    assert _total(results, "checkin-week") == 70  # 10 days in a row: one bonus (at 7)
    with pytest.raises(RuleFileError, match="lateness_hours"):
        make_ruleset(
            "- {id: b, kind: base_rate, points: 1, per_minor: 100}", top="lateness_hours: 48\n"
        )


def test_streak_state_stays_small_and_round_trips() -> None:
    """A year of daily check-ins keeps only the window's days, and to_json/from_json agree."""
    start = at("2026-01-01T09:00:00")
    days = [check_in((start + timedelta(days=n)).isoformat()) for n in range(365)]
    state = run(RULES, days)[-1].state
    streak = state.streaks["checkin-week"]
    assert len(streak.recent) <= 5
    assert streak.length == 365
    assert RuleState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_a_format_1_state_still_loads_and_its_streak_continues() -> None:
    """State stored before this release ({"last_period", "length"}, no milestone payers)
    loads; the next day continues the run as it always did."""
    day6 = at("2026-11-06T09:00:00").date().toordinal()
    old = {
        "format": 1,
        "purchase_count": 1,
        "cumulative_spend_minor": 5000,
        "last_purchase_on": "2026-11-01",
        "last_activity_on": "2026-11-06",
        "latest_day": "2026-11-06",
        "badges": ["first-swipe"],
        "partners_seen": [],
        "milestones": {"first-swipe": 100},
        "streaks": {"checkin-week": {"last_period": day6, "length": 6}},
        "challenges": {},
        "counters": {},
    }
    state = RuleState.from_json(old)
    assert state.milestone_events == {}
    results = run(RULES, [check_in("2026-11-07T09:00:00")], state=state)
    assert _total(results, "checkin-week") == 70
    again = RuleState.from_json(json.loads(json.dumps(results[-1].state.to_json())))
    assert again == results[-1].state


def _when(event: EarningEvent) -> datetime:
    return event.occurred_at


# Within the window: events spread over a few weeks, each arriving at most 72 h after a later
# one has (a shuffle bounded by the window), against the same events sorted by event time.
instant = st.integers(min_value=0, max_value=40 * 24 * 60)  # minutes after the start


@settings(max_examples=150, deadline=None)
@given(
    minutes=st.lists(
        st.tuples(instant, st.sampled_from(["check_in", "purchase"]), st.sampled_from([500, 1500])),
        min_size=1,
        max_size=40,
    ),
    delays=st.lists(st.integers(min_value=0, max_value=72 * 60), min_size=40, max_size=40),
)
def test_any_arrival_order_within_the_window_gives_the_points_of_event_time_order(
    minutes: list[tuple[int, str, int]], delays: list[int]
) -> None:
    """Each event arrives up to 72 h after it happened (so at most 72 h behind the newest
    event seen); the points, badges and streak lengths equal those of sorted arrival."""
    start = at("2026-10-05T00:00:00")
    events = []
    for n, (offset, kind, amount) in enumerate(minutes):
        when = (start + timedelta(minutes=offset)).isoformat()
        event = check_in(when) if kind == "check_in" else purchase(amount, when=when)
        events.append((offset + delays[n], offset, n, event))
    arrival = [event for *_, event in sorted(events, key=lambda e: (e[0], e[2]))]
    in_time = [event for *_, event in sorted(events, key=lambda e: (e[1], e[2]))]
    late = run(RULES, arrival)
    ordered = run(RULES, in_time)
    assert _total(late) == _total(ordered)
    assert late[-1].state.badges == ordered[-1].state.badges
    for rule_id in ("checkin-week", "weekly-habit", "once"):
        assert _total(late, rule_id) == _total(ordered, rule_id)
    assert all(r.too_late_for == () for r in late)
