"""``holds expire [--as-of T] --operator``: void every pending hold whose timeout has passed.

The points go back to the wallets (and their lots). The stream worker's timers do this too;
run it by hand when holds are stuck (``holds list --overdue``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import ops_of, parse_moment, require_operator
from points.cli.expiry import run_expiry
from points.cli.options import Operator
from points.cli.store import count_due_holds


def command(
    ctx: typer.Context,
    operator: Operator,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Void holds timed out at or before this ISO date/time "
        "(a date is 00:00 UTC; default: now).", show_default=False)] = None,
) -> None:
    """Void the holds that timed out."""
    ops = ops_of(ctx)
    operator = require_operator(operator)
    moment = parse_moment("--as-of", as_of, default=ops.now())
    with ops.read() as conn:
        due = count_due_holds(conn, ops.program, moment)
    with ops.output.progress("voiding timed-out holds", due) as progress:
        run = run_expiry(ops, "expire-holds", moment, operator, count_due_holds, progress)
    ops.output.emit(
        {"as_of": moment, "holds_voided": run.done, "entries": list(run.entry_keys),
         "replayed_batches": run.replayed, "operator": operator},
        f"voided {run.done} timed-out hold{'s' if run.done != 1 else ''} as of "
        f"{moment.isoformat()} in {len(run.entry_keys)} entr"
        f"{'ies' if len(run.entry_keys) != 1 else 'y'}",
    )
