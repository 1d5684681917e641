"""``campaigns report ID``: a campaign's treated customers against its holdout (uplift).

Reads the campaign from the rule file (``--rules``, default the configured one), its
population and outcomes from the ledger database (:mod:`points.marketing.campaign_data`),
and shows :class:`points.marketing.uplift.UpliftReport` as tables or ``--json``.
docs/marketing.md explains every figure. Exit 3: no such campaign; 2: it has no holdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from points.cli.context import ops_of
from points.cli.errors import BadInput, NotFound
from points.cli.options import CostPerPointMinor, PerPoints
from points.cli.output import table
from points.marketing.reports import campaign_report
from points.marketing.stats import Interval
from points.rules import load_ruleset
from points.rules.backtest import PointCost
from points.rules.ruleset import CampaignRule

__all__ = ["command"]


def _money(minor: float) -> str:
    return f"{minor / 100:,.2f}"


def _interval(value: Interval | None, money: bool = True) -> tuple[str, str]:
    if value is None:
        return ("-", "-")
    show = _money if money else (lambda v: f"{v:+.2f}%")
    return (show(value.estimate), f"[{show(value.low)}, {show(value.high)}]")


def command(
    ctx: typer.Context,
    campaign_id: Annotated[str, typer.Argument(help="The campaign rule's id.", show_default=False)],
    rules: Annotated[Path | None, typer.Option(
        "--rules", help="Rule file (default: POINTS_RULES__PATH).", exists=True,
        dir_okay=False, show_default=False)] = None,
    cost_minor: CostPerPointMinor = 1,
    per_points: PerPoints = 1,
) -> None:
    """Treated against holdout over a campaign's window: spend, points, incremental spend."""
    ops = ops_of(ctx)
    ruleset = load_ruleset(rules or ops.settings.rules.path)
    campaign = ruleset.rule(campaign_id)
    if not isinstance(campaign, CampaignRule):
        known = ", ".join(r.id for r in ruleset.rules if isinstance(r, CampaignRule)) or "none"
        raise NotFound(f"no campaign {campaign_id!r} in rule set {ruleset.version} "
                       f"(campaigns: {known})")
    if campaign.holdout_percent is None:
        raise BadInput(f"campaign {campaign_id!r} has no holdout_percent: it has no control "
                       "group to compare with (docs/rules.md, Holdouts)")
    with ops.read() as conn:
        report, population = campaign_report(conn, campaign, PointCost(cost_minor, per_points).of)
    data = report.to_json()
    data["population_not_narrowed_by"] = list(population.not_narrowed_by)
    t, h = report.treated, report.holdout
    groups = table(
        f"Campaign {campaign.id}: {campaign.window.starts_at.isoformat()} to "
        f"{campaign.window.ends_at.isoformat()}, holdout {campaign.holdout_percent}%",
        ["", "treated", "holdout"],
        [
            ("customers", t.customers, h.customers),
            ("active customers", t.active_customers, h.active_customers),
            ("purchases per customer", f"{t.purchases_per_customer:.3f}",
             f"{h.purchases_per_customer:.3f}"),
            ("spend per customer", _money(t.spend.mean), _money(h.spend.mean)),
            ("campaign points (holdout: would have earned)", t.campaign_points,
             h.campaign_points),
        ],
        numeric=("treated", "holdout"),
    )
    ratio = report.cost_per_incremental_spend
    uplift = table(
        "Uplift (95% interval, Welch's t)", ["", "estimate", "95% interval"],
        [
            ("spend difference per customer", *_interval(report.difference)),
            ("incremental spend (treated group)", *_interval(report.incremental_spend)),
            ("uplift on holdout spend", *_interval(report.uplift_percent, money=False)),
            ("points cost", _money(report.cost_minor), ""),
            ("cost per unit of incremental spend",
             *(("-", "not measurable: the interval reaches zero") if ratio is None
               else (f"{ratio[0]:.4f}", f"[{ratio[1]:.4f}, {ratio[2]:.4f}]"))),
        ],
        numeric=("estimate",),
    )
    notes = f"verdict: {report.verdict}"
    if population.not_narrowed_by:
        notes += ("\npopulation not narrowed by behavioural conditions: "
                  + ", ".join(population.not_narrowed_by) + " (dilutes, does not bias)")
    ops.output.emit(data, groups, uplift, notes)
