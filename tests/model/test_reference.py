"""The reference model says what docs/rules.md says, on the docs' own examples and sentences.

The model is the yardstick of the pipeline check, so its readings are pinned here, each against
the sentence it follows (rules/default.yaml, Asia/Shanghai calendar).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.model.reference import RuleFile, calculate, load_rule_file

JOINED_LONG_AGO = "2026-08-01T00:00:00+08:00"  # "new-customer-double" no longer applies in Dec


@pytest.fixture(scope="module")
def rules() -> RuleFile:
    return load_rule_file()


def profile(joined_at: str = JOINED_LONG_AGO, **extra: Any) -> dict[str, Any]:
    return {"event_type": "customer_profile", "event_id": "prof", "customer_id": "c",
            "occurred_at": joined_at, "joined_at": joined_at, "segment": "mass",
            "status": "active", **extra}  # fmt: skip


def purchase(event_id: str, at: str, amount: int, mcc: str = "5411",
             merchant: str = "M-1") -> dict[str, Any]:  # fmt: skip
    return {"event_type": "purchase", "event_id": event_id, "customer_id": "c",
            "occurred_at": at, "amount_minor": amount, "currency": "CNY", "mcc": mcc,
            "merchant_id": merchant, "channel": "card_present"}  # fmt: skip


def refund(event_id: str, original: str, at: str, amount: int,
           kind: str = "refund") -> dict[str, Any]:  # fmt: skip
    return {"event_type": kind, "event_id": event_id, "customer_id": "c", "occurred_at": at,
            "original_event_id": original, "amount_minor": amount, "currency": "CNY",
            "mcc": "5411", "merchant_id": "M-1", "channel": "card_present"}  # fmt: skip


def check_in(event_id: str, at: str) -> dict[str, Any]:
    return {"event_type": "check_in", "event_id": event_id, "customer_id": "c", "occurred_at": at}


def test_dining_earns_two_points_per_yuan_rounded_down(rules: RuleFile) -> None:
    """§3 base_rate: "88.50 yuan of dining earns 8850 x 2 / 100 = 177 points", + first-swipe,
    + welcome-back: 122 days after joining without a purchase counts as dormant (reading Q1 of
    /work/notes/model-findings.md, as rules.md says for dormant_for_days)."""
    out = calculate(rules, [profile(), purchase("p1", "2026-12-01T12:00:00+08:00", 8_850, "5812")])
    assert out.by_rule["base-dining-ride"] == 177
    assert out.balance == 177 + 100 + 500


def test_partial_refunds_round_up_on_the_running_total_and_a_full_refund_takes_all(
    rules: RuleFile,
) -> None:
    """§4: proportional lines come back rounded up, never more than earned; a reversal is a
    full refund of the rest, and the first-swipe milestone goes with the purchase count."""
    events = [
        profile(),
        purchase("p1", "2026-12-01T12:00:00+08:00", 1_000),  # 10 base + 100 first-swipe
        refund("r1", "p1", "2026-12-01T13:00:00+08:00", 333),  # ceil(3.33) = 4
        refund("r2", "p1", "2026-12-01T14:00:00+08:00", 333),  # ceil(6.66) = 7 in all: 3 more
    ]
    assert calculate(rules, events).balance == 110 - 7
    events.append(refund("r3", "p1", "2026-12-01T15:00:00+08:00", 1, kind="reversal"))
    assert calculate(rules, events).balance == 0


def test_a_refund_below_a_milestone_reached_on_another_purchase_takes_it_back(
    rules: RuleFile,
) -> None:
    """§4: "if the customer's ... purchase count, after a full refund, falls below a
    milestone's threshold, its points and badge are taken back" (issue 12, finding 2)."""
    events = [
        profile(),
        purchase("p1", "2026-12-01T12:00:00+08:00", 1_000),  # 10 + first-swipe 100
        purchase("p2", "2026-12-01T13:00:00+08:00", 2_000),  # 20
        refund("r1", "p1", "2026-12-02T12:00:00+08:00", 1_000),
        refund("r2", "p2", "2026-12-02T13:00:00+08:00", 2_000),
    ]
    out = calculate(rules, events)
    assert out.balance == 0
    assert out.milestones_taken_across == ["r2 takes back first-swipe"]
    assert "first-swipe" not in out.badges


def test_check_in_streak_counts_by_event_time_whatever_the_arrival_order(
    rules: RuleFile,
) -> None:
    """§3 streak + DESIGN §8: seven daily check-ins earn 7 x 5 + 70, also when day 1 arrives
    after day 2 (issue 12, finding 6); a duplicate adds nothing."""
    days = [check_in(f"a{d}", f"2026-12-0{d}T23:59:00+08:00") for d in range(1, 8)]
    shuffled = [days[1], days[0], *days[2:], days[3]]
    assert calculate(rules, [profile(), *days]).balance == 105
    assert calculate(rules, [profile(), *shuffled]).balance == 105


def test_a_missed_day_is_forgiven_but_does_not_count(rules: RuleFile) -> None:
    """checkin-week: grace_periods 1 forgives one missed day between two active ones; the
    streak needs seven active days."""
    days = [1, 2, 3, 5, 6, 7, 8]
    events = [check_in(f"a{d}", f"2026-12-{d:02d}T09:00:00+08:00") for d in days]
    assert calculate(rules, [profile(), *events]).balance == 7 * 5 + 70
    assert calculate(rules, [profile(), *events[:-1]]).balance == 6 * 5


def test_the_overall_cap_per_transaction_cuts_later_lines(rules: RuleFile) -> None:
    """§2 and caps: 20,000 points at most per transaction; later lines are cut first."""
    big = purchase("p1", "2026-12-01T12:00:00+08:00", 3_000_000, "4511")  # travel: 45,000
    out = calculate(rules, [profile(), big])
    assert out.balance == 20_000
    assert out.by_rule["base-travel"] == 20_000
    assert out.by_rule["first-swipe"] == 0
