"""Options and arguments shared by several commands (one definition, one help text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "AsOfDay", "CostPerPointMinor", "Customer", "Key", "Limit", "Operator", "OptionalOperator",
    "PerPoints", "ReasonText", "RulesFile",
]

Customer = Annotated[str, typer.Argument(help="Customer id.", show_default=False)]
Operator = Annotated[str, typer.Option(
    "--operator", help="Who does this; recorded with the write.", show_default=False)]
OptionalOperator = Annotated[str | None, typer.Option(
    "--operator", help="Who does this; recorded with the write (required unless --dry-run).",
    show_default=False)]
ReasonText = Annotated[str, typer.Option(
    "--reason", help="Why; recorded with the write.", show_default=False)]
Key = Annotated[str | None, typer.Option(
    "--key", help="Idempotency key: retry with the same key to be safe "
    "(default: a fresh key, printed).", show_default=False)]

Limit = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="How many rows at most.")]

# What a point costs the bank (points.rules.backtest.PointCost): backtest and campaign reports.
CostPerPointMinor = Annotated[int, typer.Option(
    "--cost-per-point-minor", min=0, help="Cost: N minor units per --per-points points.")]
PerPoints = Annotated[int, typer.Option("--per-points", min=1)]

RulesFile = Annotated[Path | None, typer.Option(
    "--rules", help="Rule file (default: POINTS_RULES__PATH).", exists=True, dir_okay=False,
    show_default=False)]
# The behaviour profile is read "as of" a day (event time, the rule file's zone).
AsOfDay = Annotated[str | None, typer.Option(
    "--as-of", help="Read the profile as of this day (YYYY-MM-DD; default: the newest event "
    "day seen).", show_default=False)]
