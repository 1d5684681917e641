"""``nudges list``: nudges decided (points/nudges), newest first: sent, or suppressed with the
reason (no_consent, customer_status, quiet_hours, cap_per_day, cap_per_week)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy import select

from points.cli.context import ops_of
from points.cli.options import Limit
from points.cli.output import fmt_time, table
from points.nudges.tables import nudges

COLUMNS = ("nudge_id", "nudge", "kind", "customer_id", "cause", "outcome", "reason_code",
           "reason", "local_day", "triggered_at", "decided_at", "template", "offer_id")


def _opt(help_text: str) -> Any:
    return typer.Option(help=help_text, show_default=False)


def command(
    ctx: typer.Context,
    customer: Annotated[str | None, _opt("Only this customer's nudges.")] = None,
    suppressed: Annotated[bool, _opt("Only the suppressed ones (not sent), with why.")] = False,
    limit: Limit = 100,
) -> None:
    """List nudges decided, newest first."""
    ops = ops_of(ctx)
    t = nudges
    query = select(*(t.c[name] for name in COLUMNS)).order_by(
        t.c.decided_at.desc(), t.c.triggered_at.desc(), t.c.nudge_id
    )
    if customer is not None:
        query = query.where(t.c.customer_id == customer)
    if suppressed:
        query = query.where(t.c.outcome == "suppressed")
    with ops.read() as conn:
        rows = [dict(r) for r in conn.execute(query.limit(limit)).mappings()]
    as_json = [
        {
            **r,
            "local_day": r["local_day"].isoformat(),
            "triggered_at": r["triggered_at"].isoformat(),
            "decided_at": r["decided_at"].isoformat(),
        }
        for r in rows
    ]
    ops.output.emit(
        {"nudges": as_json},
        table("Nudges", ["decided", "customer", "nudge", "cause", "outcome", "reason"],
              [(fmt_time(r["decided_at"]), r["customer_id"], r["nudge"], r["cause"],
                r["outcome"], f"{r['reason_code']}: {r['reason']}" if r["reason_code"] else "")
               for r in rows]),
    )
