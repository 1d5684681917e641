"""A campaign's uplift report read from the ledger: what the CLI and the dashboard both show."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from points.marketing.campaign_data import Population, campaign_outcomes, campaign_population
from points.marketing.uplift import UpliftReport, build_report
from points.rules import RuleSet
from points.rules.ruleset import CampaignRule

__all__ = ["campaign_report", "campaign_reports_json", "holdout_campaigns"]


def holdout_campaigns(ruleset: RuleSet) -> list[CampaignRule]:
    """The rule set's campaigns that declare a holdout, in file order."""
    return [
        rule
        for rule in ruleset.rules
        if isinstance(rule, CampaignRule) and rule.holdout_percent is not None
    ]


def campaign_report(
    conn: Connection, campaign: CampaignRule, cost_of_points: Callable[[int], int]
) -> tuple[UpliftReport, Population]:
    """Treated against holdout for ``campaign`` (which must have a ``holdout_percent``)."""
    assert campaign.holdout_percent is not None
    population = campaign_population(conn, campaign)
    report = build_report(
        campaign.id,
        campaign.window.starts_at,
        campaign.window.ends_at,
        campaign.holdout_percent,
        population.customers,
        campaign_outcomes(conn, campaign),
        cost_of_points,
    )
    return report, population


def campaign_reports_json(
    conn: Connection, ruleset: RuleSet, cost_of_points: Callable[[int], int]
) -> dict[str, Any]:
    """Every holdout campaign's report as the CLI's ``--json`` shows it (the dashboard's)."""
    reports = []
    for campaign in holdout_campaigns(ruleset):
        report, population = campaign_report(conn, campaign, cost_of_points)
        data = report.to_json()
        data["population_not_narrowed_by"] = list(population.not_narrowed_by)
        reports.append(data)
    return {"ruleset_version": ruleset.version, "campaigns": reports}
