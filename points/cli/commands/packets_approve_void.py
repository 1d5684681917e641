"""``packets approve-void PACKET_ID --operator``: the checker voids the packet; what is not
claimed returns to the sender. The requester cannot approve (also a CHECK on the table)."""

from __future__ import annotations

import typer

from points.cli.commands.packets_void import PacketId
from points.cli.context import ops_of, require_operator
from points.cli.options import Operator
from points.cli.output import fmt_points
from points.gifts import desk


def command(ctx: typer.Context, packet_id: PacketId, operator: Operator) -> None:
    """Approve a requested void: the unclaimed points return to the sender."""
    ops = ops_of(ctx)
    operator = require_operator(operator)
    now = ops.now()
    with ops.engine().begin() as conn:
        row = desk.void_packet(conn, packet_id=packet_id, operator=operator, now=now)
    returned = int(row["total"]) - int(row["claimed_points"])
    ops.output.emit(
        {"packet_id": packet_id, "status": row["status"], "resolved_by": operator,
         "void_requested_by": row["void_requested_by"], "returned": returned},
        f"packet {packet_id} voided by {operator} (asked by {row['void_requested_by']}): "
        f"{fmt_points(returned)} points returned to {row['sender_id']}")
