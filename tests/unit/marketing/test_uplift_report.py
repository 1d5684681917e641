"""The uplift report's figures from per-customer outcomes, worked by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from points.marketing.uplift import CustomerOutcome, build_report
from points.rules.holdout import in_holdout

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


def _ids(held: bool, count: int) -> list[str]:
    """The first ``count`` customer ids the hash puts in (or out of) campaign c's 20% holdout."""
    found = [f"k{n}" for n in range(500) if in_holdout("c", f"k{n}", 20) == held]
    return found[:count]


def test_report_from_known_outcomes() -> None:
    """Treated spend 100, 200, 300, 0 (mean 150, var 16,666.67); holdout 100, 50, 0 (mean 50,
    var 2,500): difference 100 per customer, 400 for the 4 treated; Welch SE
    sqrt(16,666.67/4 + 2,500/3) = 70.71, df 5000^2 / (4166.67^2/3 + 833.33^2/2) = 4.08 -> t 2.756
    (just under the table's 2.776 for 4 df), so the interval is 100 +- 194.9: it contains
    zero."""
    treated, held = _ids(False, 4), _ids(True, 3)
    outcomes = {
        treated[0]: CustomerOutcome(1, 100, 10),
        treated[1]: CustomerOutcome(2, 200, 20),
        treated[2]: CustomerOutcome(3, 300, 30),
        # treated[3] bought nothing: counts with spend 0
        held[0]: CustomerOutcome(1, 100, 7),
        held[1]: CustomerOutcome(1, 50, 3),
        held[2]: CustomerOutcome(0, 0, 0),
        "someone-else": CustomerOutcome(9, 9_999, 99),  # not in the population: ignored
    }
    report = build_report("c", START, END, 20, treated + held, outcomes, lambda p: 2 * p)
    t, h = report.treated, report.holdout
    assert (t.customers, t.active_customers, t.purchases, t.spend_minor) == (4, 3, 6, 600)
    assert (h.customers, h.active_customers, h.purchases, h.spend_minor) == (3, 2, 2, 150)
    assert (t.campaign_points, h.campaign_points, report.cost_minor) == (60, 10, 120)
    assert t.spend.mean == 150 and h.spend.mean == 50
    assert t.spend.variance == pytest.approx(50_000 / 3)
    assert h.spend.variance == pytest.approx(2_500)
    difference = report.difference
    assert difference is not None
    se = math.sqrt(50_000 / 12 + 2_500 / 3)
    assert se == pytest.approx(70.71, abs=0.01)
    assert difference.df == pytest.approx(4.0755, abs=1e-4)
    assert difference.estimate == 100
    assert difference.high - 100 == pytest.approx(2.7563 * se, rel=1e-4)
    spend = report.incremental_spend
    assert spend is not None
    assert spend.estimate == 400 and spend.contains(0)
    assert report.cost_per_incremental_spend is None  # the interval reaches zero
    assert report.verdict == "no measurable effect (interval contains zero)"
    data = report.to_json()
    assert data["incremental_spend_minor"]["estimate"] == 400
    assert data["treated"]["spend_per_customer_minor"] == 150
    assert data["uplift_percent"]["estimate"] == 200.0  # 100 on a holdout mean of 50


def test_cost_per_incremental_spend_when_the_effect_is_clear() -> None:
    """Treated all spend 1,000 or 1,010, holdout 500 or 510: difference 500 per customer for
    10 treated = 5,000 incremental; 500 points at 1 minor unit each cost 0.1 per unit."""
    treated, held = _ids(False, 10), _ids(True, 10)
    outcomes = {c: CustomerOutcome(1, 1_000 + 10 * (i % 2), 50) for i, c in enumerate(treated)}
    outcomes |= {c: CustomerOutcome(1, 500 + 10 * (i % 2), 0) for i, c in enumerate(held)}
    report = build_report("c", START, END, 20, treated + held, outcomes, lambda p: p)
    spend = report.incremental_spend
    assert spend is not None and spend.estimate == 5_000 and spend.low > 0
    ratio = report.cost_per_incremental_spend
    assert ratio is not None
    assert ratio[0] == pytest.approx(0.1)
    assert ratio[1] < ratio[0] < ratio[2]
    assert report.verdict.startswith("the campaign brought more spend")


def test_a_group_of_one_gives_no_interval() -> None:
    """One holdout customer: no variance, no interval, and the report says why."""
    treated, held = _ids(False, 5), _ids(True, 1)
    report = build_report("c", START, END, 20, treated + held, {}, lambda p: p)
    assert report.difference is None and report.incremental_spend is None
    assert report.verdict == "not enough customers in a group to compare"
    assert report.to_json()["incremental_spend_minor"] is None
