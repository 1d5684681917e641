"""``packets list``: red packets, newest first, filtered by status or sender."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy import select

from points.cli.context import ops_of
from points.cli.options import Limit
from points.cli.output import fmt_points, fmt_time, table
from points.gifts.tables import red_packets

COLUMNS = ("packet_id", "code", "sender_id", "total", "shares", "split", "status",
           "claimed_count", "claimed_points", "expires_at", "created_at", "void_requested_by",
           "resolved_by")


def command(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(
        help="Only open, claimed, expired or voided.", show_default=False)] = None,
    sender: Annotated[str | None, typer.Option(
        help="Only this sender's packets.", show_default=False)] = None,
    limit: Limit = 100,
) -> None:
    """List red packets, newest first."""
    ops = ops_of(ctx)
    t = red_packets
    query = select(*(t.c[name] for name in COLUMNS)).order_by(t.c.created_at.desc()).limit(limit)
    if status:
        query = query.where(t.c.status == status)
    if sender:
        query = query.where(t.c.sender_id == sender)
    with ops.read() as conn:
        rows: list[dict[str, Any]] = [dict(r) for r in conn.execute(query).mappings()]
    ops.output.emit(rows, table(
        "Red packets", ["packet", "code", "sender", "total", "shares", "split", "status",
                        "claimed", "claimed pts", "expires", "void asked by"],
        [(r["packet_id"], r["code"], r["sender_id"], fmt_points(r["total"]), r["shares"],
          r["split"], r["status"], r["claimed_count"], fmt_points(r["claimed_points"]),
          fmt_time(r["expires_at"]), r["void_requested_by"] or "") for r in rows],
        numeric=("total", "claimed pts")))
