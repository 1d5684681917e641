"""A campaign's uplift report: treated against holdout over the campaign window (pure).

The groups are every customer of the campaign's population (see
:mod:`points.marketing.campaign_data`), split by :func:`points.rules.holdout.in_holdout`; a
customer who bought nothing in the window counts with spend 0. Comparing whole randomised
groups, buyers or not, is an *intention-to-treat* comparison: the hash does not know who
buys, so the groups differ only by the campaign (docs/marketing.md).

The incremental spend is the difference of mean spend per customer (treated minus holdout),
scaled to the treated group's size, with Welch's t interval (:mod:`points.marketing.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from points.marketing.stats import Interval, Summary, summary, welch_interval
from points.rules.holdout import in_holdout

__all__ = ["CustomerOutcome", "GroupFigures", "UpliftReport", "build_report"]

METHOD = (
    "Welch's t interval (unequal variances, Welch-Satterthwaite df) on the difference of mean "
    "net spend per customer, treated minus holdout, every customer of the population counted "
    "(0 for no purchase), scaled to the treated group's size"
)


@dataclass(frozen=True, slots=True)
class CustomerOutcome:
    """One customer over the window: purchases, net spend (minor units, after refunds) and
    the campaign's points (paid, net of clawbacks; or, in the holdout, what it would have
    paid)."""

    purchases: int = 0
    spend_minor: int = 0
    campaign_points: int = 0


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """One group's totals and per-customer figures."""

    customers: int
    active_customers: int
    purchases: int
    spend_minor: int
    campaign_points: int
    spend: Summary

    @property
    def purchases_per_customer(self) -> float:
        return self.purchases / self.customers if self.customers else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "active_customers": self.active_customers,
            "purchases": self.purchases,
            "purchases_per_customer": round(self.purchases_per_customer, 4),
            "spend_minor": self.spend_minor,
            "spend_per_customer_minor": round(self.spend.mean, 2),
            "spend_sd_minor": round(self.spend.sd, 2),
            "campaign_points": self.campaign_points,
        }


@dataclass(frozen=True, slots=True)
class UpliftReport:
    """What ``points-ledger campaigns report`` shows (docs/marketing.md reads it)."""

    campaign_id: str
    starts_at: datetime
    ends_at: datetime
    holdout_percent: int
    treated: GroupFigures
    holdout: GroupFigures
    #: per-customer difference of mean spend (None: a group has fewer than two customers)
    difference: Interval | None
    cost_minor: int  # what the treated group's campaign points cost the bank

    @property
    def incremental_spend(self) -> Interval | None:
        """The difference scaled to the treated group: spend the campaign brought."""
        if self.difference is None:
            return None
        return self.difference.scaled(self.treated.customers)

    @property
    def uplift_percent(self) -> Interval | None:
        """The difference as a percent of the holdout's mean spend (same interval, divided;
        the holdout mean's own uncertainty is not in it — read it as indicative)."""
        if self.difference is None or self.holdout.spend.mean <= 0:
            return None
        return self.difference.scaled(100 / self.holdout.spend.mean)

    @property
    def cost_per_incremental_spend(self) -> tuple[float, float, float] | None:
        """Cost (minor units) per minor unit of incremental spend: estimate, best, worst.

        None unless the whole interval is above zero: a campaign whose uplift may be nothing
        has no finite worst case."""
        spend = self.incremental_spend
        if spend is None or spend.low <= 0:
            return None
        return (
            self.cost_minor / spend.estimate,
            self.cost_minor / spend.high,
            self.cost_minor / spend.low,
        )

    @property
    def verdict(self) -> str:
        spend = self.incremental_spend
        if spend is None:
            return "not enough customers in a group to compare"
        if spend.low > 0:
            return "the campaign brought more spend (interval above zero)"
        if spend.high < 0:
            return "treated customers spent less (interval below zero)"
        return "no measurable effect (interval contains zero)"

    def to_json(self) -> dict[str, Any]:
        def interval(value: Interval | None, digits: int = 2) -> dict[str, Any] | None:
            if value is None:
                return None
            return {
                "estimate": round(value.estimate, digits),
                "low": round(value.low, digits),
                "high": round(value.high, digits),
                "confidence": value.confidence,
                "df": None if math.isinf(value.df) else round(value.df, 1),
            }

        ratio = self.cost_per_incremental_spend
        return {
            "campaign": self.campaign_id,
            "window": {
                "starts_at": self.starts_at.isoformat(),
                "ends_at": self.ends_at.isoformat(),
            },
            "holdout_percent": self.holdout_percent,
            "method": METHOD,
            "treated": self.treated.to_json(),
            "holdout": self.holdout.to_json(),
            "spend_difference_per_customer_minor": interval(self.difference),
            "incremental_spend_minor": interval(self.incremental_spend),
            "uplift_percent": interval(self.uplift_percent, 3),
            "cost_minor": self.cost_minor,
            "cost_per_incremental_spend": None
            if ratio is None
            else {
                "estimate": round(ratio[0], 4),
                "best": round(ratio[1], 4),
                "worst": round(ratio[2], 4),
            },
            "verdict": self.verdict,
        }


def _figures(customers: list[str], outcomes: Mapping[str, CustomerOutcome]) -> GroupFigures:
    none = CustomerOutcome()
    rows = [outcomes.get(customer, none) for customer in customers]
    return GroupFigures(
        customers=len(rows),
        active_customers=sum(1 for row in rows if row.purchases > 0),
        purchases=sum(row.purchases for row in rows),
        spend_minor=sum(row.spend_minor for row in rows),
        campaign_points=sum(row.campaign_points for row in rows),
        spend=summary(row.spend_minor for row in rows),
    )


def build_report(
    campaign_id: str,
    starts_at: datetime,
    ends_at: datetime,
    holdout_percent: int,
    population: Iterable[str],
    outcomes: Mapping[str, CustomerOutcome],
    cost_of_points: Callable[[int], int],
    confidence: float = 0.95,
) -> UpliftReport:
    """Split ``population`` by the campaign's holdout and compare the groups' outcomes.

    ``cost_of_points(points) -> minor units`` prices the treated group's campaign points
    (e.g. :class:`points.rules.backtest.PointCost`'s ``of``)."""
    treated: list[str] = []
    held: list[str] = []
    for customer in population:
        (held if in_holdout(campaign_id, customer, holdout_percent) else treated).append(customer)
    treated_figures = _figures(treated, outcomes)
    holdout_figures = _figures(held, outcomes)
    difference = None
    if treated_figures.customers >= 2 and holdout_figures.customers >= 2:
        difference = welch_interval(treated_figures.spend, holdout_figures.spend, confidence)
    return UpliftReport(
        campaign_id,
        starts_at,
        ends_at,
        holdout_percent,
        treated_figures,
        holdout_figures,
        difference,
        cost_of_points(treated_figures.campaign_points),
    )
