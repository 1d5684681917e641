"""The demo's day (simulation/traffic.py with demo/campaigns.py's effects, rules/default.yaml)
through the earning service: the uplift report recovers the simulated truth for
young-lifestyle-2026 (+8%) and finds no effect where there is none (long-tail-groceries)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from demo.campaigns import check_campaigns, demo_effects
from points.decoding import RawMessage
from points.earning import EarningService
from points.rules import load_ruleset
from points.settings import TopicNames
from simulation.traffic import DEFAULT_DAY, generate_day

DEFAULT_RULES = Path(__file__).resolve().parents[3] / "rules" / "default.yaml"
TOPICS = TopicNames()


def test_the_demo_day_report_contains_the_truth_and_the_control_claims_nothing(
    engine: Engine,
) -> None:
    """Seed 11: 4,000 customers, 16,000 purchases with refunds, reversals, duplicates and a few
    malformed messages. Each campaign's 95% interval for incremental spend contains the net
    spend the simulation added (positive for young-lifestyle-2026, zero for the control)."""
    ruleset = load_ruleset(DEFAULT_RULES)
    day = generate_day(
        seed=11,
        customers=4_000,
        transactions=16_000,
        prefix="dm",
        effects=demo_effects(ruleset, DEFAULT_DAY.year),
    )
    service = EarningService(engine, ruleset, TOPICS, clock=lambda: DEFAULT_DAY.replace(day=27))
    for topic, messages in (
        (TOPICS.bank_customers, day.customers),
        (TOPICS.bank_transactions, day.transactions),
    ):
        for start in range(0, len(messages), 2_000):
            chunk = messages[start : start + 2_000]
            service.process(
                [RawMessage(topic, 0, start + i, k, v) for i, (k, v) in enumerate(chunk)]
            )

    checks = {
        c.campaign_id: c for c in check_campaigns(engine, "dm", ruleset, day.true_incremental_minor)
    }
    assert sorted(checks) == ["long-tail-groceries", "young-lifestyle-2026"]
    lifestyle = checks["young-lifestyle-2026"]
    assert lifestyle.true_incremental_minor > 0
    assert lifestyle.report.holdout.customers > 0
    assert lifestyle.report.holdout.campaign_points > 0  # what the holdout would have cost
    assert lifestyle.recovered, lifestyle.report.to_json()
    control = checks["long-tail-groceries"]
    assert control.true_incremental_minor == 0
    assert control.recovered, control.report.to_json()
    assert control.report.cost_per_incremental_spend is None
