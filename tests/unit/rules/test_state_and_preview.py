"""Rule state is immutable and round-trips through JSON; preview is evaluate without effects."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from points.rules import (
    EarningEvent,
    NotAnEarningEvent,
    PurchaseFacts,
    RuleState,
    evaluate,
    load_ruleset,
    preview,
)
from tests.unit.rules.builders import at, check_in, profile, purchase, refund, run, share

DEFAULT = load_ruleset(Path(__file__).resolve().parents[3] / "rules" / "default.yaml")


def _busy_state() -> RuleState:
    events: list[EarningEvent] = [
        purchase(8_850, mcc="4121", merchant_id="M-RIDEHAIL-0001", when="2026-11-02"),
        check_in("2026-11-02"),
        share("2026-11-03"),
        purchase(60_000, mcc="5812", when="2026-11-09"),
        check_in("2026-11-04"),
    ]
    return run(DEFAULT, events, profile(birth_year=2000, segment="long_tail"))[-1].state


def test_state_round_trips_through_json_exactly() -> None:
    """from_json(to_json(state)) equals the state, also after a trip through json text."""
    state = _busy_state()
    data = state.to_json()
    assert RuleState.from_json(json.loads(json.dumps(data))) == state
    assert RuleState.from_json(RuleState().to_json()) == RuleState()
    assert data["streaks"] and data["counters"] and data["badges"]


def test_state_is_immutable_even_inside_its_mappings() -> None:
    """Neither fields nor the counters and milestones mappings can be changed in place."""
    state = _busy_state()
    with pytest.raises(FrozenInstanceError):
        state.purchase_count = 99  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.counters["x"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"format": 3}, "unsupported rule state format"),
        ({"format": True}, "unsupported rule state format"),
        ({"purchase_count": -1}, "non-negative integer"),
        ({"purchase_count": 1.5}, "non-negative integer"),
        ({"badges": "gold"}, "list of strings"),
        ({"last_purchase_on": 20261101}, "ISO date"),
        ({"streaks": {"s": {"length": 1}}}, "last_period"),
    ],
)
def test_malformed_state_json_is_rejected(change: dict[str, Any], fragment: str) -> None:
    """A corrupt stored state raises ValueError instead of silently resetting the customer."""
    with pytest.raises(ValueError, match=fragment):
        RuleState.from_json({**RuleState().to_json(), **change})


def test_day_counters_are_pruned_to_the_kept_window() -> None:
    """Old day counters are dropped as days pass, so the state stays small."""
    state = RuleState().with_counts(
        {"d:2026-01-01:total": 5, "m:2026-01:total": 5}, date(2026, 1, 1)
    )
    later = state.with_counts({"d:2026-03-01:total": 1}, date(2026, 3, 1))
    assert later.counters == {"d:2026-03-01:total": 1, "m:2026-01:total": 5}
    much_later = later.with_counts({}, date(2026, 6, 1))
    assert much_later.counters == {}


def test_evaluate_is_deterministic_and_leaves_its_inputs_alone() -> None:
    """Same inputs, same Evaluation; the state passed in is not modified."""
    state = _busy_state()
    before = state.to_json()
    event = purchase(12_345, mcc="5812", when="2026-11-10")
    who = profile(birth_year=2000)
    first = evaluate(DEFAULT, event, who, state, now=at("2026-11-10T13:00:00"))
    second = evaluate(DEFAULT, event, who, state, now=at("2026-11-10T13:00:00"))
    assert first == second
    assert state.to_json() == before


def test_preview_gives_the_same_answer_as_evaluating_the_real_purchase() -> None:
    """ "If I spend X at Y now": preview and evaluate agree line for line."""
    state = _busy_state()
    who = profile(birth_year=2000, segment="long_tail")
    event = purchase(8_800, mcc="4121", merchant_id="M-RIDEHAIL-0001", when="2026-11-10")
    real = evaluate(DEFAULT, event, who, state, now=event.occurred_at)
    what_if = preview(
        DEFAULT,
        PurchaseFacts(
            amount_minor=8_800,
            currency="CNY",
            mcc="4121",
            merchant_id="M-RIDEHAIL-0001",
            channel="card_present",
            occurred_at=event.occurred_at,
        ),
        who,
        state,
        now=event.occurred_at,
    )
    assert (what_if.points, what_if.lines, what_if.badges_awarded) == (
        real.points,
        real.lines,
        real.badges_awarded,
    )
    assert what_if.points > 0
    assert "cobrand-ridehail" in what_if.explain()


@pytest.mark.parametrize(
    ("amount", "error"),
    [(0, ValueError), (-5, ValueError), (10.5, TypeError)],
)
def test_preview_input_must_be_a_positive_integer_amount(amount: Any, error: type) -> None:
    """Money is integer minor units: zero, negative and float amounts are refused."""
    with pytest.raises(error):
        PurchaseFacts(amount, "CNY", "5411", "M-1", "online", at("2026-11-10"))


def test_refunds_are_not_earning_events() -> None:
    """evaluate() refuses refunds: they go through clawback() with the original record."""
    original = purchase(1_000)
    with pytest.raises(NotAnEarningEvent, match="clawback"):
        evaluate(
            DEFAULT,
            refund(original, 500),  # type: ignore[arg-type]
            profile(),
            RuleState(),
            now=at("2026-12-01"),
        )
