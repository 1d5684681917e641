"""``holds list [--customer C] [--overdue]``: pending holds, soonest timeout first.

An overdue hold (timeout passed, still pending) is a stuck hold: the partner never posted
or voided it and no ``holds expire`` has run since. See docs/operations.md.
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import ops_of
from points.cli.options import Limit
from points.cli.output import fmt_points, fmt_time, table
from points.cli.store import pending_holds


def command(
    ctx: typer.Context,
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer.",
                                                 show_default=False)] = None,
    overdue: Annotated[bool, typer.Option("--overdue",
                                          help="Only holds past their timeout.")] = False,
    limit: Limit = 100,
) -> None:
    """List pending holds."""
    ops = ops_of(ctx)
    now = ops.now()
    with ops.read() as conn:
        holds = pending_holds(conn, ops.program, customer, limit=limit,
                              due_by=now if overdue else None)
    ops.output.emit(
        {"as_of": now, "holds": [h.to_json(now) for h in holds]},
        table("Pending holds" + (f" of {customer}" if customer else ""),
              ["hold key", "customer", "amount", "times out", "to", "overdue", "created"],
              [(h.hold_key, h.customer_id, fmt_points(h.amount), fmt_time(h.timeout_at),
                f"{h.destination.owner}/{h.destination.kind}",
                "OVERDUE" if h.overdue(now) else "", fmt_time(h.created_at)) for h in holds],
              numeric=("amount",)),
    )
