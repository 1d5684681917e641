"""``swaps show SWAP_ID``: one swap, every reply it saw (applied or ignored, and why) and its
ledger entries with their legs (hold, fee hold, and their post or void)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from points.cli.commands.swaps_list import swap_json
from points.cli.context import ops_of
from points.cli.errors import NotFound
from points.cli.output import fmt_points, fmt_time, key_values, table
from points.exchange.store import replies_of, swap_entry_keys, swap_row
from points.ledger import entry_by_key


def command(
    ctx: typer.Context,
    swap_id: Annotated[str, typer.Argument(help="The swap id (sw-...).", show_default=False)],
) -> None:
    """Show one swap with its replies and ledger legs."""
    ops = ops_of(ctx)
    with ops.read() as conn:
        row = swap_row(conn, swap_id)
        if row is None:
            raise NotFound(f"no swap {swap_id!r}")
        replies = replies_of(conn, swap_id)
        found = [entry_by_key(conn, key) for key in swap_entry_keys(conn, swap_id)]
    swap = swap_json(row)
    ledger: list[dict[str, Any]] = [
        {"entry_id": e.entry_id, "idempotency_key": e.idempotency_key, "kind": e.kind,
         "status": e.status, "amount": e.amount, "reject_code": e.reject_code,
         "created_at": e.created_at,
         "legs": [{"debit": f"{d.owner}/{d.kind}@{d.program}",
                   "credit": f"{c.owner}/{c.kind}@{c.program}", "amount": amount}
                  for d, c, amount in e.legs]}
        for e in found if e is not None
    ]
    reply_rows = [
        {k: r[k] for k in ("event_id", "event_type", "outcome", "reason", "detail", "points",
                           "partner_units", "partner_reference", "at")}
        for r in replies
    ]
    ops.output.emit(
        {**swap, "replies": reply_rows, "ledger": ledger},
        key_values(f"Swap {swap_id}", [(k, fmt_time(v) if k.endswith("_at") else v)
                                       for k, v in swap.items()]),
        table("Replies", ["at", "event", "type", "outcome", "reason", "points", "partner ref"],
              [(fmt_time(r["at"]), r["event_id"], r["event_type"], r["outcome"], r["reason"],
                r["points"], r["partner_reference"] or "") for r in reply_rows]),
        table("Ledger legs", ["entry", "key", "kind", "status", "debit", "credit", "amount"],
              [(e["entry_id"], e["idempotency_key"], e["kind"], e["status"], leg["debit"],
                leg["credit"], fmt_points(leg["amount"]))
               for e in ledger for leg in e["legs"]],
              numeric=("amount",)),
    )
