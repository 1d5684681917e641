"""``adjust list [--status S] [--limit N]``: adjustment requests, newest first."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from points.cli.context import ops_of
from points.cli.options import Limit
from points.cli.output import fmt_signed, fmt_time, table
from points.cli.store import list_requests


class Status(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    all = "all"


def command(
    ctx: typer.Context,
    status: Annotated[Status, typer.Option("--status", help="Which requests.")] = Status.pending,
    limit: Limit = 50,
) -> None:
    """List adjustment requests (pending ones by default)."""
    ops = ops_of(ctx)
    with ops.read() as conn:
        requests = list_requests(conn, None if status is Status.all else status.value,
                                 limit=limit)
    ops.output.emit(
        {"requests": [r.to_json() for r in requests]},
        table(f"Adjustment requests ({status.value})",
              ["id", "customer", "delta", "reason", "requested by", "requested", "status",
               "decided by"],
              [(r.id, r.customer_id, fmt_signed(r.delta), r.reason, r.requested_by,
                fmt_time(r.requested_at), r.status, r.decided_by or "") for r in requests],
              numeric=("id", "delta")),
    )
