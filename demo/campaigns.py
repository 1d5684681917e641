"""The demo day's campaign truth, and the uplift report checked against it.

The demo's simulated customers respond to two of rules/default.yaml's campaigns with a true
effect set here: young treated customers spend 8% more under ``young-lifestyle-2026``; nobody
changes anything for ``long-tail-groceries`` (a zero-effect control). After the day, the same
report as ``points-ledger campaigns report`` (points/marketing) runs over this run's customers
only (the demo's ledger keeps every earlier run's days, whose truth this run does not know),
and the summary shows whether each 95% interval contains the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from sqlalchemy import Engine

from points.marketing.campaign_data import campaign_outcomes, campaign_population
from points.marketing.uplift import UpliftReport, build_report
from points.rules import RuleSet
from points.rules.backtest import PointCost
from points.rules.ruleset import CampaignRule
from simulation.campaign_response import CampaignEffect, is_young

__all__ = ["TRUE_UPLIFT_PERCENT", "CampaignCheck", "check_campaigns", "demo_effects"]

#: campaign id -> the true uplift of its treated customers' spend, percent
TRUE_UPLIFT_PERCENT: Final = {"young-lifestyle-2026": 8, "long-tail-groceries": 0}


@dataclass(frozen=True, slots=True)
class CampaignCheck:
    campaign_id: str
    true_uplift_percent: int
    true_incremental_minor: int
    report: UpliftReport

    @property
    def recovered(self) -> bool:
        """The 95% interval contains the simulated truth (None interval: not recovered)."""
        spend = self.report.incremental_spend
        return spend is not None and spend.contains(self.true_incremental_minor)


def _campaigns(ruleset: RuleSet) -> list[CampaignRule]:
    found = []
    for campaign_id in TRUE_UPLIFT_PERCENT:
        rule = ruleset.rule(campaign_id)
        if isinstance(rule, CampaignRule) and rule.enabled and rule.holdout_percent is not None:
            found.append(rule)
    return found


def _in_segments(segments: frozenset[str], profile: dict[str, Any]) -> bool:
    return not segments or profile.get("segment") in segments


def demo_effects(ruleset: RuleSet, year: int) -> list[CampaignEffect]:
    """The effects the simulated day responds to (only campaigns the rule file holds out)."""
    effects = []
    for rule in _campaigns(ruleset):
        assert rule.holdout_percent is not None
        audience = rule.audience
        if rule.id == "young-lifestyle-2026":
            effects.append(
                CampaignEffect(
                    rule.id,
                    rule.holdout_percent,
                    TRUE_UPLIFT_PERCENT[rule.id],
                    lambda profile: is_young(profile, year),
                )
            )
        else:
            effects.append(
                CampaignEffect(
                    rule.id,
                    rule.holdout_percent,
                    TRUE_UPLIFT_PERCENT[rule.id],
                    partial(_in_segments, frozenset(audience.segments or ())),
                )
            )
    return effects


def check_campaigns(
    engine: Engine, prefix: str, ruleset: RuleSet, truth: dict[str, int]
) -> list[CampaignCheck]:
    """Each demo campaign's report over this run's customers (ids starting with ``prefix``)."""
    checks = []
    with engine.connect() as conn:
        for rule in _campaigns(ruleset):
            assert rule.holdout_percent is not None
            population = [
                c for c in campaign_population(conn, rule).customers if c.startswith(prefix)
            ]
            outcomes = {
                c: o for c, o in campaign_outcomes(conn, rule).items() if c.startswith(prefix)
            }
            report = build_report(
                rule.id,
                rule.window.starts_at,
                rule.window.ends_at,
                rule.holdout_percent,
                population,
                outcomes,
                PointCost().of,
            )
            checks.append(
                CampaignCheck(rule.id, TRUE_UPLIFT_PERCENT[rule.id], truth.get(rule.id, 0), report)
            )
    return checks
