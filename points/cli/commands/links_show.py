"""``links show LINK_OR_REQUEST_ID``: one member link, by its request id (``link:...``) or by
``CUSTOMER_ID/PARTNER_ID``, with the refusals recorded about it (partner replies that decided
nothing, the bank's own refusals)."""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.commands.links_list import link_json
from points.cli.context import ops_of
from points.cli.errors import NotFound
from points.cli.output import fmt_time, key_values, table
from points.exchange.store import link_refusals, link_row


def command(
    ctx: typer.Context,
    link_or_request_id: Annotated[str, typer.Argument(
        help="The link request id, or CUSTOMER_ID/PARTNER_ID.", show_default=False)],
) -> None:
    """Show one member link and the refusals about it."""
    ops = ops_of(ctx)
    with ops.read() as conn:
        row = link_row(conn, link_or_request_id)
        if row is None:
            raise NotFound(f"no member link {link_or_request_id!r}")
        refused = link_refusals(conn, row)
    link = link_json(row)
    items = [{k: r[k] for k in ("at", "event_id", "subject_id", "reason_code", "reason")}
             for r in refused]
    ops.output.emit(
        {**link, "refusals": items},
        key_values(f"Member link {link['link_id']}",
                   [(k, fmt_time(v) if k.endswith("_at") else v) for k, v in link.items()]),
        table("Refusals", ["at", "event", "reason code", "reason"],
              [(fmt_time(r["at"]), r["event_id"] or "", r["reason_code"], r["reason"])
               for r in items]),
    )
