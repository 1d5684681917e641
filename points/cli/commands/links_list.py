"""``links list [--customer ID] [--partner P] [--state S] [--reason CODE] [--limit N]``:
member links (a customer's membership at a partner), latest change first.

``--state``: ``requested`` (waiting for the partner), ``linked`` or ``rejected``; ``--reason``
matches a rejection's reason code. A link's id is ``CUSTOMER_ID/PARTNER_ID``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from points.cli.commands.swaps_list import (
    CustomerFilter,
    PartnerFilter,
    ReasonFilter,
    checked_state,
)
from points.cli.context import ops_of
from points.cli.options import Limit
from points.cli.output import fmt_time, table
from points.exchange.store import OpsFilter, find_links

LINK_STATES = ("requested", "linked", "rejected")


def link_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "link_id": f"{row['customer_id']}/{row['partner_id']}",
        "customer_id": row["customer_id"], "partner_id": row["partner_id"],
        "partner_member_id": row["partner_member_id"], "state": row["status"],
        "request_id": row["request_id"], "referral_id": row["referral_id"],
        "reason": row["reason"], "updated_at": row["updated_at"],
    }


def command(
    ctx: typer.Context,
    customer: CustomerFilter = None,
    partner: PartnerFilter = None,
    state: Annotated[str | None, typer.Option(
        "--state", help=f"Only this state: {', '.join(LINK_STATES)}.",
        show_default=False)] = None,
    reason: ReasonFilter = None,
    limit: Limit = 100,
) -> None:
    """List member links, latest change first."""
    ops = ops_of(ctx)
    wanted = checked_state(state, LINK_STATES)
    with ops.read() as conn:
        rows = find_links(conn, OpsFilter(customer, partner, wanted, reason, limit))
    found = [link_json(r) for r in rows]
    ops.output.emit(
        {"links": found},
        table("Member links", ["link", "member", "state", "request", "reason", "updated"],
              [(li["link_id"], li["partner_member_id"], li["state"], li["request_id"],
                li["reason"] or "", fmt_time(li["updated_at"])) for li in found]),
    )
