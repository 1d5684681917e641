"""The behaviour profile: rolling windows by event time, lifecycle stages, late events, refunds,
its JSON round trip inside the rule state, and its use as campaign audience conditions."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from points.rules import RuleState, evaluate
from points.rules.behaviour import (
    BUCKET_DAYS_KEPT,
    EMPTY_BEHAVIOUR,
    Behaviour,
    LifecycleThresholds,
    snapshot,
    stage_of,
)
from points.rules.clawback import clawback
from points.rules.errors import RuleFileError
from points.rules.state import behaviour_of
from tests.unit.rules.builders import make_ruleset, profile, purchase, refund, run

T = LifecycleThresholds()  # new 30, dormant 60, reactivated 30, at_risk 50%, baseline >= 2
D0 = date(2026, 1, 1).toordinal()


def bought(days: list[int], amount: int = 1000, thresholds: LifecycleThresholds = T) -> Behaviour:
    """A profile after a purchase on each day offset from D0, in the order given."""
    behaviour = EMPTY_BEHAVIOUR
    for offset in days:
        behaviour = behaviour.with_purchase(
            D0 + offset, amount, "groceries", None, thresholds.dormant_days
        )
    return behaviour


# ------------------------------------------------------------------------ window arithmetic


def test_windows_are_the_days_ending_on_the_day_asked_inclusive() -> None:
    """purchases_30d on day D counts days D-29..D; purchases_90d days D-89..D."""
    behaviour = bought([0, 10, 60, 61, 89], amount=500)
    assert behaviour.window(D0 + 89, 30) == (3, 1500)  # days 60, 61, 89
    assert behaviour.window(D0 + 90, 30) == (2, 1000)  # day 60 drops at D = 90
    assert behaviour.window(D0 + 91, 30) == (1, 500)
    assert behaviour.window(D0 + 89, 90) == (5, 2500)
    assert behaviour.window(D0 + 90, 90) == (4, 2000)  # day 0 drops at D = 90
    assert behaviour.window(D0 + 89, 90, 30) == (2, 1000)  # the baseline: days 0 and 10
    assert behaviour.window(D0 + 5, 30) == (1, 500)  # a past day sees nothing after it


def test_buckets_stay_bounded_whatever_the_history() -> None:
    """One bucket per purchase day, none older than BUCKET_DAYS_KEPT before the newest."""
    behaviour = bought(list(range(0, 400)) * 1)
    assert len(behaviour.days) == 3 * BUCKET_DAYS_KEPT
    assert behaviour.days[0] == D0 + 399 - BUCKET_DAYS_KEPT + 1
    again = bought([5, 5, 5])
    assert again.days == (D0 + 5, 3, 3000)


def test_refunds_lower_spend_on_their_own_day_not_frequency_or_recency() -> None:
    """A refund is net spend on its own day; a window's spend never shows below zero."""
    behaviour = bought([0, 20], amount=10_000).with_refund(D0 + 25, 4_000)
    assert behaviour.window(D0 + 25, 30) == (2, 16_000)
    assert behaviour.window(D0 + 24, 30) == (2, 20_000)
    assert behaviour.last_purchase == D0 + 20
    only_refund = bought([0], amount=1_000).with_refund(D0 + 40, 5_000)
    assert only_refund.window(D0 + 45, 30) == (0, 0)


# ------------------------------------------------------------------------ lifecycle stages


def test_a_customer_moves_new_active_at_risk_dormant_reactivated_active() -> None:
    """Weekly purchases make a customer active after new_days; fewer purchases against their
    own baseline make them at risk; 60 idle days dormant; the next purchase reactivated."""
    weekly = [0, 7, 14, 21, 28, 35, 42, 49, 56, 63]
    behaviour = bought(weekly)
    assert stage_of(behaviour, D0 + 0, T) == "new"
    assert stage_of(behaviour, D0 + 29, T) == "new"
    assert stage_of(behaviour, D0 + 63, T) == "active"
    # Day 85: days 56..85 hold 2 purchases, the baseline days -4..55 hold 8 (4 per 30 days):
    # 2 is not below 50% of 4. Day 90: 1 against 8 -> at risk.
    assert stage_of(behaviour, D0 + 85, T) == "active"
    assert stage_of(behaviour, D0 + 90, T) == "at_risk"
    assert stage_of(behaviour, D0 + 122, T) == "at_risk"
    assert stage_of(behaviour, D0 + 123, T) == "dormant"  # 60 days after day 63
    back = behaviour.with_purchase(D0 + 130, 1000, "dining", None, T.dormant_days)
    assert back.reactivated == D0 + 130
    assert stage_of(back, D0 + 130, T) == "reactivated"
    assert stage_of(back, D0 + 159, T) == "reactivated"
    assert stage_of(back, D0 + 160, T) == "active"  # no baseline left to fall against


def test_a_customer_below_the_baseline_minimum_is_never_at_risk() -> None:
    """One purchase in the baseline window is too little to say frequency fell (two are)."""
    behaviour = bought([0, 40])
    assert stage_of(behaviour, D0 + 75, T) == "at_risk"  # baseline days -14..45: 2
    assert stage_of(behaviour, D0 + 95, T) == "active"  # baseline days 6..65: 1


def test_legacy_customers_are_not_new() -> None:
    """A state with purchases but no profile (older than profiles) is seeded: last purchase
    known, first purchase unknown and long ago."""
    state = RuleState(purchase_count=4, last_purchase_on=date(2026, 1, 1))
    seeded = behaviour_of(state)
    assert stage_of(seeded, D0 + 10, T) == "active"
    assert stage_of(seeded, D0 + 60, T) == "dormant"
    assert snapshot(seeded, date(2026, 1, 11), T).first_purchase_on is None
    assert behaviour_of(RuleState()) is EMPTY_BEHAVIOUR


def _oracle_stage(days: list[int], day: int, t: LifecycleThresholds) -> str:
    """The stage read straight off the full list of purchase days (no buckets, no state)."""
    seen = sorted({d for d in days if d <= day})
    if not seen:
        return "new"
    first, last = seen[0], seen[-1]
    if day - last >= t.dormant_days:
        return "dormant"
    if day - first < t.new_days:
        return "new"
    every = sorted(set(days))
    comebacks = [b for a, b in itertools.pairwise(every) if b - a >= t.dormant_days]
    if comebacks and comebacks[-1] <= day and day - comebacks[-1] < t.reactivated_days:
        return "reactivated"
    recent = sum(1 for d in days if day - 30 < d <= day)
    baseline = sum(1 for d in days if day - 90 < d <= day - 30)
    if baseline >= t.baseline_min_purchases and recent * 200 < t.at_risk_percent * baseline:
        return "at_risk"
    return "active"


purchase_days = st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=40)
thresholds = st.builds(
    lambda dormant, new, react, pct, base: LifecycleThresholds(
        new, dormant, min(react, dormant), pct, base
    ),
    st.integers(1, 90),
    st.integers(1, 90),
    st.integers(1, 90),
    st.integers(1, 100),
    st.integers(1, 5),
)


@settings(max_examples=300, deadline=None)
@given(purchase_days, thresholds, st.integers(0, 40))
def test_stage_agrees_with_the_full_history(
    days: list[int], t: LifecycleThresholds, after: int
) -> None:
    """On the newest purchase day and after it, the bounded profile gives the stage the whole
    purchase history gives, and the same windows."""
    behaviour = bought(sorted(days), thresholds=t)
    day = D0 + max(days) + after
    offsets = [D0 + d for d in days]
    assert stage_of(behaviour, day, t) == _oracle_stage(offsets, day, t)
    assert behaviour.window(day, 90)[0] == sum(1 for d in offsets if day - 90 < d <= day)


@settings(max_examples=300, deadline=None)
@given(purchase_days, thresholds, st.data())
def test_late_arrival_within_the_lateness_window_gives_the_in_order_profile(
    days: list[int], t: LifecycleThresholds, data: st.DataObject
) -> None:
    """Purchases arriving up to 30 days late (the rule file's largest lateness) leave the
    same profile as in-order arrival: buckets, first/last purchase, reactivation, affinities,
    for purchases the kept buckets all hold (a 90-day span: docs/rules.md states the limit
    beyond it)."""
    days = [d % 90 for d in days]
    delays = data.draw(st.lists(st.integers(0, 30), min_size=len(days), max_size=len(days)))
    arrival = [d for _, d in sorted(zip(map(sum, zip(days, delays, strict=True)), days,
                                        strict=True))]
    assert bought(arrival, thresholds=t) == bought(sorted(days), thresholds=t)


# ------------------------------------------------------------------------ in the rule state


def test_the_profile_round_trips_through_the_rule_state_json() -> None:
    """to_json / from_json keep the profile exactly; a state stored without one loads empty."""
    behaviour = bought([0, 3, 70, 140]).with_refund(D0 + 141, 200)
    state = RuleState(purchase_count=4, behaviour=behaviour)
    stored = state.to_json()
    assert RuleState.from_json(stored) == state
    assert "behaviour" not in RuleState().to_json()
    del stored["behaviour"]
    assert RuleState.from_json(stored).behaviour is EMPTY_BEHAVIOUR


def test_a_corrupt_stored_profile_is_refused() -> None:
    """Buckets out of order or a negative count are not loaded silently."""
    stored = RuleState(behaviour=bought([0, 3])).to_json()
    stored["behaviour"]["days"] = stored["behaviour"]["days"][3:] + stored["behaviour"]["days"][:3]
    with pytest.raises(ValueError, match="malformed rule state"):
        RuleState.from_json(stored)


BASE = """
- id: everyday
  kind: base_rate
  points: 1
  per_minor: 100
"""


def test_the_engine_builds_the_profile_from_purchases_and_refunds() -> None:
    """Each purchase counts on its day in the rule file's zone, with its MCC group and
    partner; a refund lowers spend on the refund's day."""
    rules = make_ruleset(BASE)
    first = purchase(10_000, mcc="5812", when="2026-03-01T23:30:00")  # Beijing time
    results = run(
        rules,
        [first, purchase(5_000, mcc="5812", when="2026-03-05"),
         purchase(2_000, mcc="5411", merchant_id="M-RIDE", when="2026-03-06")],
    )
    state = results[-1].state
    view = snapshot(state.behaviour, date(2026, 3, 6), T)
    assert (view.purchases_30d, view.spend_30d_minor) == (3, 17_000)
    assert view.top_mcc_group == "dining"
    assert view.top_partner == "ridehail"
    assert view.first_purchase_on == date(2026, 3, 1)
    record = results[0].record()
    after = clawback(rules, record, refund(first, 4_000, when="2026-03-07"), state).state
    assert snapshot(after.behaviour, date(2026, 3, 7), T).spend_30d_minor == 13_000
    assert after.behaviour.window(date(2026, 3, 6).toordinal(), 30) == (3, 17_000)


# ------------------------------------------------------------------------ audiences

WINBACK = (
    BASE
    + """
- id: winback
  kind: campaign
  window: {starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2028-01-01T00:00:00+08:00"}
  audience: {lifecycle: [at_risk]}
  fixed_points: 500
- id: big-diners
  kind: campaign
  window: {starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2028-01-01T00:00:00+08:00"}
  audience:
    spend_90d_minor: {at_least: 30000}
    purchases_30d: {at_least: 2, below: 10}
    top_mcc_group: [dining]
  fixed_points: 70
- id: ride-fans
  kind: campaign
  window: {starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2028-01-01T00:00:00+08:00"}
  audience: {partner_affinity: [ridehail]}
  fixed_points: 9
"""
)


def _points(
    rules_text: str, history: list[tuple[str, str]], last: tuple[str, str]
) -> dict[str, int]:
    """The campaign points of the last purchase after a history of (MCC, day) purchases."""
    rules = make_ruleset(rules_text)
    state = RuleState()
    for mcc, day in [*history, last]:
        result = evaluate(
            rules, purchase(10_000, mcc=mcc, when=day), profile(), state,
            now=purchase(1, when=day).occurred_at,
        )
        state = result.state
    return {line.rule_id: line.points for line in result.lines if line.rule_id != "everyday"}


def test_a_lifecycle_audience_pays_only_customers_in_that_stage() -> None:
    """The at-risk customer (weekly buyer gone quiet for five weeks) gets the win-back bonus
    on the purchase that brings them back; a steady weekly buyer does not."""
    weekly = [("5411", f"2026-03-{d:02d}") for d in (1, 8, 15, 22, 29)]
    weekly += [("5411", f"2026-04-{d:02d}") for d in (5, 12, 19, 26)]
    assert _points(WINBACK, weekly, ("5411", "2026-06-01")) == {"winback": 500}
    assert _points(WINBACK, weekly, ("5411", "2026-05-03")) == {}


def test_spend_frequency_and_affinity_conditions() -> None:
    """Bounds are [at_least, below); top MCC group and partner affinity are the single most
    frequent group / partner before this purchase."""
    diner = [("5812", "2026-03-01"), ("5812", "2026-03-10"), ("5411", "2026-03-12")]
    assert _points(WINBACK, diner, ("5411", "2026-03-15")) == {"big-diners": 70}
    assert _points(WINBACK, diner[:2], ("5411", "2026-03-15")) == {}  # 20,000 < 30,000
    grocer = [("5411", "2026-03-01"), ("5411", "2026-03-10"), ("5812", "2026-03-12")]
    assert _points(WINBACK, grocer, ("5812", "2026-03-15")) == {}


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ("{lifecycle: [sleeping]}", "lifecycle"),
        ("{spend_90d_minor: {at_least: 5, below: 5}}", "below must be greater than at_least"),
        ("{purchases_30d: {}}", "give at_least, below, or both"),
        ("{top_mcc_group: [pets]}", "unknown MCC group 'pets'"),
        ("{partner_affinity: [nobody]}", "unknown partner 'nobody'"),
    ],
)
def test_bad_behaviour_conditions_are_refused_with_the_rule_and_field(
    audience: str, message: str
) -> None:
    """A rule file with a bad behaviour condition does not load; the error names the rule."""
    rules = BASE + f"""
- id: offer
  kind: campaign
  window: {{starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2027-01-01T00:00:00+08:00"}}
  audience: {audience}
  fixed_points: 5
"""
    with pytest.raises(RuleFileError) as caught:
        make_ruleset(rules)
    text = str(caught.value)
    assert "offer" in text and message in text


def test_lifecycle_thresholds_are_read_and_checked() -> None:
    """The rule file's lifecycle section sets the thresholds; reactivated_days may not exceed
    dormant_days and dormant_days is at most 90 (the profile's window)."""
    from points.rules.plan import plan_of

    rules = make_ruleset(BASE, top="lifecycle: {dormant_days: 45, reactivated_days: 14}\n")
    assert plan_of(rules).lifecycle == LifecycleThresholds(30, 45, 14, 50, 2)
    for bad, message in [
        ("{dormant_days: 30, reactivated_days: 40}", "reactivated_days must not exceed"),
        ("{dormant_days: 120}", "less than or equal to 90"),
        ("{at_risk_percent: 0}", "greater than 0"),
    ]:
        with pytest.raises(RuleFileError, match=message):
            make_ruleset(BASE, top=f"lifecycle: {bad}\n")


def test_lifecycle_change_names_the_stage_before_and_after_an_event() -> None:
    """Each state's stage is as of its own newest event day: an app check-in five weeks after
    a weekly buyer's last purchase shows the move from active to at risk."""
    from points.rules.lifecycle import lifecycle_change, profile_of
    from tests.unit.rules.builders import check_in

    rules = make_ruleset(BASE)
    from points.rules.plan import plan_of

    cycle = plan_of(rules).lifecycle
    days = [f"2026-03-{d:02d}" for d in (1, 8, 15, 22, 29)]
    days += [f"2026-04-{d:02d}" for d in (5, 12, 19, 26)]
    results = run(rules, [purchase(1000, when=d) for d in days])
    before = results[-1].state
    after = run(rules, [check_in("2026-06-01")], state=before)[-1].state
    assert lifecycle_change(RuleState(), results[0].state, cycle) == ("new", "new")
    assert lifecycle_change(before, after, cycle) == ("active", "at_risk")
    shown = profile_of(after, cycle)
    assert shown is not None and shown.as_of == date(2026, 6, 1) and shown.recency_days == 36
    assert profile_of(RuleState(), cycle) is None


def test_a_late_purchase_closing_the_latest_reactivations_gap_brings_back_the_one_before() -> None:
    """Purchases on days 34, 99, 117 (99 and 117 each end a 16-day dormant gap) and then, late,
    day 112: 112 closes the gap 117 ended, so the latest reactivation is 99 again, as in
    in-order arrival (it used to be forgotten)."""
    t = LifecycleThresholds(14, 16, 9, 82, 1)
    assert bought([34, 99, 117, 112], thresholds=t).reactivated == D0 + 99
    assert bought([34, 99, 112, 117], thresholds=t).reactivated == D0 + 99
