"""``expire --as-of DATE [--dry-run] --operator``: expire what is left of lots dated up to DATE.

The dry run shows, per customer, what would expire (lots, points, expiry dates) and writes
nothing. The real run moves the points to the program's expiry account in bounded batches
(see :mod:`points.cli.expiry`), and can be run again safely.
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import ops_of, parse_moment, require_operator
from points.cli.expiry import run_expiry
from points.cli.options import OptionalOperator
from points.cli.output import fmt_points, fmt_time, table
from points.cli.store import DueLots, count_due_lots, due_lots_by_customer


def due_table(title: str, due: list[DueLots]) -> object:
    return table(
        title,
        ["customer", "lots", "points", "earliest expiry", "latest expiry"],
        [(d.customer_id, d.lots, fmt_points(d.points), fmt_time(d.earliest),
          fmt_time(d.latest)) for d in due],
        numeric=("lots", "points"),
    )


def command(
    ctx: typer.Context,
    as_of: Annotated[str, typer.Option(
        "--as-of", help="Expire lots whose expiry is at or before this ISO date/time "
        "(a date is 00:00 UTC). Never in the future.", show_default=False)],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would expire, per customer; write nothing.")] = False,
    operator: OptionalOperator = None,
) -> None:
    """Expire points whose lots have reached their expiry date."""
    ops = ops_of(ctx)
    moment = parse_moment("--as-of", as_of)
    who = None if dry_run else require_operator(operator)
    with ops.read() as conn:
        due = due_lots_by_customer(conn, ops.program, moment)
    total_points = sum(d.points for d in due)
    total_lots = sum(d.lots for d in due)
    summary = {"as_of": moment, "program": ops.program, "dry_run": dry_run,
               "customers": len(due), "lots": total_lots, "points": total_points,
               "per_customer": [d.to_json() for d in due]}
    if dry_run:
        ops.output.emit(
            summary,
            due_table(f"Would expire as of {moment.isoformat()} (dry run)", due),
            f"{fmt_points(total_points)} points in {total_lots} lots of {len(due)} customers; "
            "nothing was written",
        )
        return
    assert who is not None
    with ops.output.progress("expiring lots", total_lots) as progress:
        run = run_expiry(ops, "expire-lots", moment, who, count_due_lots, progress)
    ops.output.emit(
        {**summary, "lots_expired": run.done, "entries": list(run.entry_keys),
         "replayed_batches": run.replayed, "operator": who},
        due_table(f"Expired as of {moment.isoformat()}", due),
        f"expired {run.done} lots ({fmt_points(total_points)} points) of {len(due)} customers "
        f"in {len(run.entry_keys)} entries",
    )
