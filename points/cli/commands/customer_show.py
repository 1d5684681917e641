"""``customer show ID``: a customer's behaviour profile as the earning stream keeps it.

Reads the customer's rule state (points/marketing/profiles.py) and the lifecycle thresholds of
the rule file (``--rules``, default the configured one); ``--as-of DAY`` asks about another day
than the customer's newest event day. docs/rules.md, "Behaviour profile and lifecycle stages",
explains every figure. Exit 3: the ledger knows no such customer.
"""

from __future__ import annotations

from datetime import date

import typer

from points.cli.context import ops_of
from points.cli.errors import BadInput, NotFound
from points.cli.options import AsOfDay, Customer, RulesFile
from points.cli.output import key_values, table
from points.marketing.profiles import customer_view
from points.rules import load_ruleset
from points.rules.plan import plan_of

__all__ = ["command", "parse_day"]


def parse_day(value: str | None) -> date | None:
    """``--as-of``: a calendar day, YYYY-MM-DD."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadInput(f"--as-of {value!r} is not a day (YYYY-MM-DD)") from exc


def command(
    ctx: typer.Context,
    customer_id: Customer,
    rules: RulesFile = None,
    as_of: AsOfDay = None,
) -> None:
    """Show a customer's behaviour profile: lifecycle stage, recency, 30/90-day frequency and
    spend, top MCC groups, partner affinity."""
    ops = ops_of(ctx)
    day = parse_day(as_of)
    ruleset = load_ruleset(rules or ops.settings.rules.path)
    with ops.read() as conn:
        view = customer_view(conn, customer_id, plan_of(ruleset).lifecycle, day)
    if view is None:
        raise NotFound(f"no customer {customer_id!r}: no profile from core banking and no event")
    data = view.to_json()
    data["ruleset_version"] = ruleset.version
    shown = view.profile
    if shown is None:
        ops.output.emit(data, f"Customer {customer_id}: no event yet (lifecycle: new)")
        return
    pairs: list[tuple[str, object]] = [
        ("customer", customer_id),
        ("segment", view.segment),
        ("as of", shown.as_of.isoformat()),
        ("lifecycle", shown.stage),
        ("recency (days)", shown.recency_days),
        ("purchases 30d / 90d", f"{shown.purchases_30d} / {shown.purchases_90d}"),
        ("spend 30d / 90d (minor)", f"{shown.spend_30d_minor} / {shown.spend_90d_minor}"),
        ("first purchase", shown.first_purchase_on or "-"),
        ("last purchase", shown.last_purchase_on or "-"),
        ("reactivated", shown.reactivated_on or "-"),
        ("purchases in all", view.purchases_total),
    ]
    ops.output.emit(
        data,
        key_values(f"Customer {customer_id} (rule set {ruleset.version})", pairs),
        table("Top MCC groups", ["group", "purchases"], shown.top_mcc_groups,
              numeric=("purchases",)),
        table("Partner affinity", ["partner", "purchases"], shown.partner_affinity,
              numeric=("purchases",)),
    )
