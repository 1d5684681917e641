"""``rules backtest --candidate F --current F --events F.jsonl``: compare two rule sets.

Replays recorded messages through both rule sets with :func:`points.rules.backtest.backtest`
(nothing is written anywhere) and shows points, cost and per-rule differences.
:func:`compare` is also what ``python -m points.rules.backtest`` runs (:mod:`points.cli.legacy`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from points.cli.context import ops_of
from points.cli.errors import BadInput
from points.cli.options import CostPerPointMinor, PerPoints
from points.cli.output import ProgressTask, fmt_signed, table
from points.events import CustomerOnboarded, CustomerProfile
from points.rules import Profile, load_ruleset
from points.rules.backtest import (
    BacktestReport,
    EventFileError,
    PointCost,
    backtest,
    read_events,
)

__all__ = ["command", "compare", "profiles_from"]

InputFile = Annotated[Path, typer.Option(exists=True, dir_okay=False, readable=True,
                                         show_default=False)]


def _counted(events: Iterator[Any], progress: ProgressTask) -> Iterator[Any]:
    for event in events:
        progress.advance()
        yield event


def profiles_from(path: Path | None) -> dict[str, Profile]:
    """Each customer's last profile in a file of ``bank.customers`` messages (none: empty)."""
    profiles: dict[str, Profile] = {}
    if path is None:
        return profiles
    for event in read_events(path):
        if isinstance(event, CustomerProfile | CustomerOnboarded):
            profiles[event.customer_id] = Profile.from_event(event)
    return profiles


def compare(
    candidate: Path,
    current: Path,
    events: Path,
    profiles: Path | None,
    cost: PointCost,
    *,
    counted: Callable[[Iterator[Any]], Iterator[Any]] = iter,
) -> BacktestReport:
    """Load both rule files and the profiles, then replay ``events`` through both rule sets
    (``counted`` sees every event go by). Raises RuleFileError, EventFileError, OSError."""
    candidate_rules = load_ruleset(candidate)
    current_rules = load_ruleset(current)
    seeded = profiles_from(profiles)
    return backtest(candidate_rules, current_rules, counted(read_events(events)), seeded,
                    cost=cost)


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def command(
    ctx: typer.Context,
    candidate: Annotated[Path, typer.Option("--candidate", help="The proposed rule file.",
                                            exists=True, dir_okay=False, show_default=False)],
    current: Annotated[Path, typer.Option("--current", help="The rule file in use.",
                                          exists=True, dir_okay=False, show_default=False)],
    events: Annotated[Path, typer.Option("--events", help="Recorded messages (JSON lines).",
                                         exists=True, dir_okay=False, show_default=False)],
    profiles: Annotated[Path | None, typer.Option(
        "--profiles", help="bank.customers messages (JSON lines) to seed profiles.",
        exists=True, dir_okay=False, show_default=False)] = None,
    cost_minor: CostPerPointMinor = 1,
    per_points: PerPoints = 1,
) -> None:
    """Compare what a candidate rule set would have awarded with the current one."""
    ops = ops_of(ctx)
    cost = PointCost(cost_minor, per_points)
    try:
        with ops.output.progress("replaying events", _lines(events)) as progress:
            report = compare(candidate, current, events, profiles, cost,
                             counted=partial(_counted, progress=progress))
    except EventFileError as error:
        raise BadInput(str(error)) from error
    c, k = report.candidate, report.current
    summary = table(
        "Backtest", ["", f"candidate {c.version}", f"current {k.version}", "difference"],
        [
            ("points awarded", c.points_awarded, k.points_awarded,
             fmt_signed(c.points_awarded - k.points_awarded) or "0"),
            ("points clawed back", c.points_clawed_back, k.points_clawed_back,
             fmt_signed(c.points_clawed_back - k.points_clawed_back) or "0"),
            ("net points", c.net_points, k.net_points,
             fmt_signed(report.net_points_difference) or "0"),
            ("cost (minor units)", c.cost_minor, k.cost_minor,
             fmt_signed(report.cost_difference_minor) or "0"),
            ("customers earning", c.customers_earning, k.customers_earning,
             fmt_signed(c.customers_earning - k.customers_earning) or "0"),
        ],
        numeric=(f"candidate {c.version}", f"current {k.version}", "difference"),
    )
    per_rule = table(
        "Net points by rule", ["rule", "candidate", "current", "difference"],
        [(rule, cand, cur, fmt_signed(diff) or "0") for rule, cand, cur, diff in
         report.rule_rows()],
        numeric=("candidate", "current", "difference"),
    )
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.events_skipped.items()))
    ops.output.emit(
        report.to_json(), summary, per_rule,
        f"customers whose points change: {report.customers_changed}; events read "
        f"{report.events_read}, evaluated {report.events_evaluated}"
        + (f", skipped: {skipped}" if skipped else ""),
    )
