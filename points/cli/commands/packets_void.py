"""``packets void PACKET_ID --reason --operator``: the maker asks for an open packet to be
voided. Nothing moves until another operator runs ``packets approve-void``."""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import ops_of, require_operator
from points.cli.errors import BadInput
from points.cli.options import Operator, ReasonText
from points.gifts import desk

PacketId = Annotated[str, typer.Argument(help="The packet id (p_...).", show_default=False)]


def command(ctx: typer.Context, packet_id: PacketId, reason: ReasonText,
            operator: Operator) -> None:
    """Ask for an open red packet to be voided (another operator approves)."""
    ops = ops_of(ctx)
    operator = require_operator(operator)
    if not (reason or "").strip():
        raise BadInput("--reason is required")
    now = ops.now()
    with ops.engine().begin() as conn:
        row = desk.request_void(conn, packet_id=packet_id, operator=operator, reason=reason,
                                now=now)
    ops.output.emit(
        {"packet_id": packet_id, "void_requested_by": operator, "void_reason": reason,
         "status": row["status"]},
        f"void of packet {packet_id} requested by {operator}; another operator approves with:\n"
        f"  points-ledger packets approve-void {packet_id} --operator NAME")
