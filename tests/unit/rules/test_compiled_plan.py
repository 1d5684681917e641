"""The compiled rule plan and the fast state paths decide exactly what the models say."""

from __future__ import annotations

import gc
import json
from types import MappingProxyType
from typing import Any

import pytest

from points.rules import EarningEvent, RuleState, evaluate
from points.rules.plan import _PLANS, plan_of
from tests.unit.rules.builders import (
    at,
    check_in,
    make_ruleset,
    profile,
    purchase,
    run,
    share,
)

RULES = """
- {id: base-dining, kind: base_rate, mcc_groups: [dining], points: 2, per_minor: 100}
- {id: base-all, kind: base_rate, points: 1, per_minor: 100}
- id: double
  kind: campaign
  window: {starts_at: "2026-11-01T00:00:00+08:00", ends_at: "2026-12-01T00:00:00+08:00"}
  extra_percent: 100
- {id: ride-x3, kind: partner_multiplier, partners: [ridehail], multiplier_percent: 300,
   cap: {per_day: 50}}
- {id: first, kind: milestone, metric: purchase_count, threshold: 1, points: 10, badge: first}
- {id: daily, kind: social, action: check_in, points: 5, cap: {per_day: 5}}
- {id: streak, kind: streak, period: day, length: 2, counts: [check_in, purchase], points: 7}
"""


def test_a_copy_with_other_rules_is_evaluated_with_its_own_rules() -> None:
    """The plan is cached per rule set object: a model_copy with new rules gets a new plan."""
    ruleset = make_ruleset(RULES)
    event = purchase(10_000, mcc="5812", when="2026-11-10")
    first = run(ruleset, [event])[0]
    assert first.rule_ids == ("base-dining", "double", "first")
    fewer = ruleset.model_copy(update={"rules": ruleset.rules[1:2]})
    assert run(fewer, [event])[0].rule_ids == ("base-all",)
    assert run(ruleset, [event])[0] == first


def test_evaluating_leaves_rule_set_equality_alone() -> None:
    """Compiling is not stored on the model, so two loads of one file stay equal."""
    one, two = make_ruleset(RULES), make_ruleset(RULES)
    run(one, [purchase(1_000)])
    assert one == two


def test_a_plan_is_released_with_its_rule_set() -> None:
    """A plan is released with its rule set."""
    ruleset = make_ruleset(RULES)
    assert plan_of(ruleset) is plan_of(ruleset)
    key = id(ruleset)
    assert key in _PLANS
    del ruleset
    gc.collect()
    assert key not in _PLANS


@pytest.mark.parametrize(
    ("when", "fires"),
    [
        ("2026-10-31T16:00:00+00:00", True),  # the window opens, said in UTC
        ("2026-10-31T15:59:59.999999+00:00", False),
        ("2026-11-30T21:29:59.999999+05:30", True),
        ("2026-11-30T21:30:00+05:30", False),  # the window end, said in India, is excluded
    ],
)
def test_campaign_windows_compare_instants_in_any_zone(when: str, fires: bool) -> None:
    """Campaign windows compare instants in any zone."""
    ruleset = make_ruleset(RULES)
    event = purchase(10_000, mcc="5812", when=when)
    result = evaluate(ruleset, event, profile(), RuleState(), now=at("2027-01-01"))
    assert ("double" in result.rule_ids) is fires


def test_states_from_the_engine_are_read_only_and_sorted() -> None:
    """Every state mapping is read-only and in key order, as RuleState() itself makes them."""
    ruleset = make_ruleset(RULES)
    events: list[EarningEvent] = [
        purchase(9_000, mcc="4121", merchant_id="M-RIDE", when="2026-11-10T09:00:00"),
        check_in("2026-11-11"),
        share("2026-11-11"),
        purchase(2_000, mcc="5812", when="2026-12-02"),
        purchase(2_000, mcc="5812", when="2026-11-28"),  # late: an older period's counters
    ]
    state = run(ruleset, events)[-1].state
    for name in ("milestones", "streaks", "challenges", "counters"):
        mapping = getattr(state, name)
        assert isinstance(mapping, MappingProxyType)
        assert list(mapping) == sorted(mapping)
        with pytest.raises(TypeError):
            # the write the types forbid (a read-only mapping) must fail at run time too
            mapping["x"] = 1  # type: ignore[index]
    assert RuleState(**{f: getattr(state, f) for f in state.__dataclass_fields__}) == state
    data = state.to_json()
    assert list(data["counters"]) == sorted(data["counters"])
    assert RuleState.from_json(json.loads(json.dumps(data))) == state


def test_from_json_puts_keys_in_order() -> None:
    """A stored state whose keys come back in another order (JSONB) is read in key order."""
    data = RuleState(
        counters={"m:2026-11:total": 3, "d:2026-11-02:total": 1, "d:2026-11-01:total": 2},
        milestones={"b": 1, "a": 2},
    ).to_json()
    data["counters"] = dict(reversed(list(data["counters"].items())))
    data["milestones"] = {"b": 1, "a": 2}
    state = RuleState.from_json(data)
    assert list(state.counters) == sorted(state.counters)
    assert list(state.milestones) == ["a", "b"]
    assert state.to_json() == RuleState.from_json(state.to_json()).to_json()


@pytest.mark.parametrize(
    "counters",
    [{"k": -1}, {"k": True}, {"k": 1.0}, {"k": "1"}, {"a": 1, "k": None}, ["k"]],
)
def test_from_json_rejects_bad_counters(counters: Any) -> None:
    """The quick bulk check of counters lets nothing through that the item check refuses."""
    with pytest.raises(ValueError, match="malformed rule state"):
        RuleState.from_json({**RuleState().to_json(), "counters": counters})


@pytest.mark.parametrize("badges", [["a", 1], [None], "ab", ("a",)])
def test_from_json_rejects_bad_string_lists(badges: Any) -> None:
    """From json rejects bad string lists."""
    with pytest.raises(ValueError, match="list of strings"):
        RuleState.from_json({**RuleState().to_json(), "badges": badges})
