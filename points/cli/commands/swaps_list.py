"""``swaps list [--customer ID] [--partner P] [--state S] [--reason CODE] [--limit N]``:
outbound swaps, newest first, with the saga state, what the customer sees and why.

``--state`` is the saga state (``requested``, ``pending``, ``completed``, ``rejected``,
``expired``) or ``cancelled`` (an expired swap the customer cancelled). See
docs/operations.md.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from points.cli.context import ops_of
from points.cli.errors import BadInput
from points.cli.options import Limit
from points.cli.output import fmt_points, fmt_time, table
from points.exchange.store import OpsFilter, find_swaps, swap_from_row
from points.exchange.swap_desk import CANCELLED_REASON, SwapView

SWAP_STATES = ("requested", "pending", "completed", "rejected", "expired", "cancelled")

CustomerFilter = Annotated[str | None, typer.Option(
    "--customer", help="Only this customer.", show_default=False)]
PartnerFilter = Annotated[str | None, typer.Option(
    "--partner", help="Only this partner (e.g. ridehail).", show_default=False)]
ReasonFilter = Annotated[str | None, typer.Option(
    "--reason", help="Only this reason code.", show_default=False)]


def checked_state(state: str | None, allowed: tuple[str, ...]) -> str | None:
    if state is not None and state not in allowed:
        raise BadInput(f"--state must be one of {', '.join(allowed)}, not {state!r}")
    return state


def swap_json(row: dict[str, Any]) -> dict[str, Any]:
    """A swap row for operations: the saga ``state`` and the customer's ``status``."""
    view = SwapView.of(swap_from_row(row))
    return {
        "swap_id": view.swap_id, "customer_id": view.customer_id,
        "partner_id": view.partner_id, "partner_member_id": row["partner_member_id"],
        "points": view.points, "fee_points": view.fee_points,
        "partner_units": view.partner_units, "state": view.state, "status": view.status,
        "reason": row["reason"], "partner_reference": view.partner_reference,
        "requested_at": view.requested_at, "deadline_at": view.deadline_at,
        "resolved_by": row["resolved_by"], "updated_at": row["updated_at"],
    }


def command(
    ctx: typer.Context,
    customer: CustomerFilter = None,
    partner: PartnerFilter = None,
    state: Annotated[str | None, typer.Option(
        "--state", help=f"Only this state: {', '.join(SWAP_STATES)}.",
        show_default=False)] = None,
    reason: ReasonFilter = None,
    limit: Limit = 100,
) -> None:
    """List outbound swaps, newest first."""
    ops = ops_of(ctx)
    wanted = checked_state(state, SWAP_STATES)
    saga_state, reason_code = wanted, reason
    if wanted == "cancelled":  # the saga keeps a customer's cancellation as expired
        saga_state, reason_code = "expired", reason or CANCELLED_REASON
    with ops.read() as conn:
        rows = find_swaps(conn, OpsFilter(customer, partner, saga_state, reason_code, limit))
    found = [swap_json(r) for r in rows]
    if wanted == "cancelled":
        found = [s for s in found if s["status"] == "cancelled"]
    ops.output.emit(
        {"swaps": found},
        table("Swaps", ["swap", "customer", "partner", "points", "fee", "state", "status",
                        "reason", "requested", "partner ref"],
              [(s["swap_id"], s["customer_id"], s["partner_id"], fmt_points(s["points"]),
                fmt_points(s["fee_points"]), s["state"], s["status"], s["reason"],
                fmt_time(s["requested_at"]), s["partner_reference"] or "") for s in found],
              numeric=("points", "fee")),
    )
