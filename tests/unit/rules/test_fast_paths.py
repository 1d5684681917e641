"""The engine's shortcuts give exactly what the plain reading of the rules gives.

Each fast path (see points.rules.records, days, counters and state) is checked against the
straightforward computation it replaces, on tables of tricky cases and on generated inputs.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from points.events import Purchase
from points.rules import EarningRecord, Line, PurchaseFacts, RuleState, evaluate, preview
from points.rules.counters import (
    _EXPIRIES,
    DAY_COUNTERS_KEPT,
    MONTH_COUNTERS_KEPT,
    _counter_key,
    _expiry,
    advance_counters,
)
from points.rules.days import moment
from points.rules.records import build_line, line_from_json
from tests.unit.rules.builders import make_ruleset, profile, purchase

# ------------------------------------------------------------------------- RuleState()


def test_an_empty_state_is_the_same_whichever_way_it_is_made() -> None:
    shared = RuleState()
    built = RuleState(purchase_count=0)  # the ordinary dataclass path
    assert shared == built
    assert shared.to_json() == built.to_json()
    assert RuleState() is shared  # one immutable instance serves every new customer
    assert RuleState.from_json(shared.to_json()) == shared
    assert dataclasses.replace(shared, purchase_count=1).purchase_count == 1
    assert shared.purchase_count == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        shared.purchase_count = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        shared.counters["d:2026-01-01:total"] = 1  # type: ignore[index]


def test_a_subclass_is_built_the_ordinary_way() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Sub(RuleState):
        pass

    assert type(Sub()) is Sub


# -------------------------------------------------------------------- counters kept


def _stale_by_the_general_rule(key: str, latest: date) -> bool:
    oldest_day = (latest - timedelta(days=DAY_COUNTERS_KEPT - 1)).isoformat()
    oldest_month = latest.year * 12 + latest.month - 1 - MONTH_COUNTERS_KEPT + 1
    scope, period, month = _counter_key(key)
    return (scope == "d" and period < oldest_day) or (scope == "m" and month < oldest_month)


_PERIODS = [
    "2026-11-26",
    "2026-02-28",
    "0001-01-01",
    "9999-12-31",
    "2026-1-5",  # not ISO: compared as text
    "20261126",  # basic ISO: compared as text
    "2026-11",
    "0000-01",
    "9999-12",
    "9998-11",
    "2026-13",
    "abc",
    "",
]


@settings(max_examples=400, deadline=None)
@given(
    scope=st.sampled_from(["d", "m", "x"]),
    period=st.sampled_from(_PERIODS)
    | st.dates().map(date.isoformat)
    | st.dates().map(lambda d: d.isoformat()[:7]),
    latest=st.dates(min_value=date(1, 3, 1)),
)
def test_the_expiry_of_a_counter_key_is_the_general_staleness_rule(
    scope: str, period: str, latest: date
) -> None:
    key = f"{scope}:{period}:total"
    try:
        general = _stale_by_the_general_rule(key, latest)
    except ValueError:
        assert _expiry(key) is None  # left to the general rule, which raises
        return
    expiry = _expiry(key)
    if expiry is not None:
        assert (latest.toordinal() >= expiry) == general


@settings(max_examples=200, deadline=None)
@given(
    days=st.lists(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)), max_size=8),
    latest=st.none() | st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    cold=st.booleans(),
)
def test_advancing_counters_drops_exactly_the_stale_periods(
    days: list[date], latest: date | None, day: date, cold: bool
) -> None:
    if cold:
        _EXPIRIES.clear()  # the first sight of every key: the general path
    counters = {f"d:{d.isoformat()}:total": 1 for d in days}
    counters |= {f"m:{d.isoformat()[:7]}:rule:x": 2 for d in days}
    counters["odd:key:kept"] = 5
    increments = {f"d:{day.isoformat()}:total": 3, f"m:{day.isoformat()[:7]}:total": 0}
    state = RuleState(counters=counters, latest_day=latest)
    result, next_latest = advance_counters(state.counters, latest, increments, day)
    expected_latest = day if latest is None else max(latest, day)
    merged = dict(state.counters)
    for key, amount in increments.items():
        if amount:
            merged[key] = merged.get(key, 0) + amount
    expected = {
        key: value
        for key, value in sorted(merged.items())
        if not _stale_by_the_general_rule(key, expected_latest)
    }
    assert next_latest == expected_latest
    assert list(result.items()) == list(expected.items())


# ------------------------------------------------------------------------ the moment

_ZONES: list[Any] = [
    UTC,
    timezone(timedelta(hours=8)),
    timezone(timedelta(hours=-5)),
    ZoneInfo("Asia/Shanghai"),
    ZoneInfo("Europe/Berlin"),
    Purchase.model_validate(
        {
            "event_type": "purchase",
            "event_id": "e",
            "customer_id": "c",
            "occurred_at": "2026-01-01T00:00:00+01:00",
            "amount_minor": 1,
            "currency": "CNY",
            "mcc": "5411",
            "merchant_id": "m",
            "channel": "online",
        }
    ).occurred_at.tzinfo,  # the event model's own zone type
]


@settings(max_examples=400, deadline=None)
@given(
    occurred=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)),
    delta_minutes=st.integers(-3000, 3000),
    occurred_zone=st.sampled_from(_ZONES),
    now_zone=st.sampled_from(_ZONES),
    fold=st.sampled_from([0, 1]),
    rule_zone=st.sampled_from([ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin")]),
)
def test_the_moment_is_the_plain_comparison_and_conversion(
    occurred: datetime,
    delta_minutes: int,
    occurred_zone: Any,
    now_zone: Any,
    fold: int,
    rule_zone: ZoneInfo,
) -> None:
    occurred_at = occurred.replace(tzinfo=occurred_zone, fold=fold)
    now = (occurred + timedelta(minutes=delta_minutes)).replace(tzinfo=now_zone)
    at, at_utc, day, notes = moment(rule_zone, occurred_at, now)
    if occurred_at > now:
        assert (at, notes) == (now, ["occurred_at is later than now; evaluated as of now"])
    else:
        assert (at, notes) == (occurred_at, [])
    assert at is (now if occurred_at > now else occurred_at)
    assert day == at.astimezone(rule_zone).date()
    assert at_utc == at.astimezone(UTC)
    assert at_utc.tzinfo is UTC


def test_now_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="now must carry a time zone"):
        moment(ZoneInfo("Asia/Shanghai"), datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1))


# ---------------------------------------------------------------------- lines, records


@pytest.mark.parametrize(
    "data",
    [
        {"rule_id": "r", "kind": "base_rate", "points": 3, "explanation": "x", "clawback": "kept"},
        {"rule_id": "r", "kind": "k", "points": 0, "explanation": "", "clawback": "milestone"},
        {"rule_id": 7, "kind": "k", "points": 1, "explanation": "x", "clawback": "kept"},
        {"rule_id": "r", "kind": "k", "points": True, "explanation": "x", "clawback": "kept"},
        {"rule_id": "r", "kind": "k", "points": -1, "explanation": "x", "clawback": "kept"},
        {"rule_id": "r", "kind": "k", "points": 1.0, "explanation": "x", "clawback": "kept"},
        {"rule_id": "r", "kind": "k", "points": 1, "explanation": "x", "clawback": "nope"},
        {"rule_id": "r", "kind": "k", "points": 1, "explanation": None, "clawback": "kept"},
        {"kind": "k", "points": 1, "explanation": "x", "clawback": "nope"},
        {"rule_id": "r", "kind": "k", "explanation": "x", "clawback": "kept"},
        [],
    ],
)
def test_a_stored_line_reads_back_as_line_from_json_reads_it(data: Any) -> None:
    def outcome(read: Any) -> Any:
        try:
            line = read(data)
        except Exception as exc:
            return (type(exc), str(exc))
        return (line, [type(getattr(line, f.name)) for f in dataclasses.fields(line)])

    assert outcome(line_from_json) == outcome(Line.from_json)


def test_lines_built_fast_equal_lines_built_by_the_dataclass() -> None:
    fast = build_line("r", "campaign", 5, "why", "full_refund")
    assert fast == Line("r", "campaign", 5, "why", "full_refund")
    assert repr(fast) == repr(Line("r", "campaign", 5, "why", "full_refund"))
    assert hash(fast) == hash(Line("r", "campaign", 5, "why", "full_refund"))


_RULES = make_ruleset(
    """
    - {id: base, kind: base_rate, points: 1, per_minor: 100}
    - id: bonus
      kind: campaign
      window: {starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2027-01-01T00:00:00+08:00"}
      extra_percent: 50
      cap: {per_day: 30}
    - {id: first, kind: milestone, metric: purchase_count, threshold: 1, points: 10, badge: b}
    """,
    top="caps: {per_transaction: 500}\n",
)


@pytest.mark.parametrize("amount", [1, 99, 100, 12_345, 10_000_000])
@pytest.mark.parametrize("when", ["2026-11-27T10:00:00", "2026-11-27T23:59:59", "2027-03-01"])
def test_a_purchase_evaluates_as_its_spend_previews(amount: int, when: str) -> None:
    event = purchase(amount, when=when, mcc="5812", channel="online", partner_id=None)
    customer = profile()
    state = RuleState()
    for _ in range(3):  # again with the state each step leaves
        now = event.occurred_at + timedelta(hours=1)
        real = evaluate(_RULES, event, customer, state, now=now)
        spend = PurchaseFacts.from_purchase(event)
        what_if = preview(_RULES, spend, customer, state, now=now)
        assert real == what_if
        record = real.record()
        assert record == EarningRecord(
            event_id=real.event_id,
            customer_id=real.customer_id,
            ruleset_version=real.ruleset_version,
            amount_minor=real.amount_minor,
            currency=real.currency or "",
            partner_id=real.partner_id,
            lines=real.lines,
        )
        assert EarningRecord.from_json(record.to_json()) == record
        assert record.to_json()["lines"] == [line.to_json() for line in record.lines]
        state = real.state
