"""Properties over random histories: caps hold, points are never negative, clawback is exact."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from points.rules import RuleState, clawback, evaluate, load_ruleset, proportional_clawback
from tests.unit.rules.builders import at, check_in, profile, purchase, refund, share

DEFAULT = load_ruleset(Path(__file__).resolve().parents[3] / "rules" / "default.yaml")
START = at("2026-10-01T00:00:00")
MCCS = ["5411", "5812", "4121", "3100", "5311", "5541", "4900", "7299"]
MERCHANTS = ["M-1", "M-RIDEHAIL-0001", "M-ESHOP-0001", "M-AIRLINE-0001"]

step = st.tuples(
    st.integers(min_value=0, max_value=60 * 24 * 3),  # minutes after the previous event
    st.sampled_from(["purchase", "purchase", "purchase", "check_in", "share"]),
    st.integers(min_value=1, max_value=5_000_000),
    st.sampled_from(MCCS),
    st.sampled_from(MERCHANTS),
)
who = st.builds(
    profile,
    segment=st.sampled_from(["mass", "long_tail", "affluent"]),
    joined=st.sampled_from(["2015-05-05", "2026-09-20"]),
    birth_year=st.sampled_from([None, 1960, 1999, 2004]),
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=40), person=who)
def test_caps_are_never_exceeded_and_points_are_never_negative(
    steps: list[tuple[int, str, int, str, str]], person: object
) -> None:
    """Over any history, per-transaction, per-day and per-month caps hold and no line is < 0."""
    caps = DEFAULT.caps
    assert caps is not None and caps.per_day and caps.per_month and caps.per_transaction
    state = RuleState()
    moment = START
    per_day: dict[object, int] = defaultdict(int)
    per_month: dict[object, int] = defaultdict(int)
    for minutes, kind, amount, mcc, merchant in steps:
        moment += timedelta(minutes=minutes)
        when = moment.isoformat()
        event = (
            purchase(amount, mcc=mcc, merchant_id=merchant, when=when)
            if kind == "purchase"
            else check_in(when)
            if kind == "check_in"
            else share(when)
        )
        result = evaluate(DEFAULT, event, person, state, now=event.occurred_at)  # type: ignore[arg-type]
        state = result.state
        assert all(line.points >= 0 for line in result.lines)
        assert result.points == sum(line.points for line in result.lines)
        assert result.points <= caps.per_transaction
        local = event.occurred_at.astimezone(DEFAULT.zone).date()
        per_day[local] += result.points
        per_month[(local.year, local.month)] += result.points
        assert per_day[local] <= caps.per_day
        assert per_month[(local.year, local.month)] <= caps.per_month
        assert RuleState.from_json(state.to_json()) == state


@settings(max_examples=200, deadline=None)
@given(
    points=st.integers(min_value=0, max_value=10**9),
    original=st.integers(min_value=1, max_value=10**10),
    cuts=st.lists(st.integers(min_value=1, max_value=10**10), max_size=8),
)
def test_proportional_clawback_never_exceeds_points_and_is_monotonic(
    points: int, original: int, cuts: list[int]
) -> None:
    """The clawed total only grows, stays within the points, and equals them once fully refunded."""
    refunded = 0
    taken = 0
    for cut in cuts:
        refunded += cut
        total = proportional_clawback(points, original, refunded)
        assert taken <= total <= points
        taken = total
    assert proportional_clawback(points, original, original) == points


@settings(max_examples=80, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=2_000_000),
    mcc=st.sampled_from(MCCS),
    merchant=st.sampled_from(MERCHANTS),
    parts=st.lists(st.integers(min_value=1, max_value=2_000_000), min_size=1, max_size=6),
    finish=st.booleans(),
)
def test_refunds_never_claw_back_more_than_the_purchase_earned(
    amount: int, mcc: str, merchant: str, parts: list[int], finish: bool
) -> None:
    """Partial refunds take back at most what was earned; a completed refund takes all of it."""
    person = profile(birth_year=2000, segment="long_tail")
    event = purchase(amount, mcc=mcc, merchant_id=merchant, when="2026-11-10")
    earned = evaluate(DEFAULT, event, person, RuleState(), now=event.occurred_at)
    record, state = earned.record(), earned.state
    taken = 0
    for part in parts:
        result = clawback(DEFAULT, record, refund(event, part), state)
        record, state = result.record, result.state
        taken += result.points
        assert result.points >= 0
        assert taken <= earned.points
    if finish and record.refunded_minor < amount:
        result = clawback(DEFAULT, record, refund(event, amount - record.refunded_minor), state)
        taken += result.points
        record = result.record
    if record.refunded_minor == amount:
        assert taken == earned.points
        assert result.state.purchase_count == 0
