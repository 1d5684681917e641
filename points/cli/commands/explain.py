"""``explain CUSTOMER``: why the balance is what it is.

The wallet is exactly the sum of its open lots (an invariant ``verify`` proves), so the open
lots with their expiry dates are the balance; the recent entries say where the points came
from (rule ids, ruleset version, source event, operator and note); held is the sum of the
pending holds; debt is what clawbacks could not take from the wallet, repaid by the next
earnings first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from points.cli.commands.statement import line_json, lines_table
from points.cli.context import ops_of
from points.cli.errors import NotFound
from points.cli.options import Customer
from points.cli.output import fmt_points, fmt_time, table
from points.cli.store import customer_known
from points.ledger import customer_balance, customer_holds, customer_lots, statement


def command(
    ctx: typer.Context,
    customer: Customer,
    entries: Annotated[int, typer.Option("--entries", min=1, max=1_000,
                                         help="How many recent entries to show.")] = 10,
) -> None:
    """Explain a customer's balance: open lots, recent entries and their reasons, holds, debt."""
    ops = ops_of(ctx)
    now = ops.now()
    with ops.read() as conn:
        if not customer_known(conn, ops.program, customer):
            raise NotFound(f"customer {customer!r} has no accounts in program {ops.program!r}")
        balance = customer_balance(conn, customer, program=ops.program, now=now,
                                   expiring_within=timedelta(days=30))
        lots = customer_lots(conn, customer, program=ops.program)
        lines = statement(conn, customer, program=ops.program, limit=entries)
        holds = customer_holds(conn, customer, program=ops.program)

    in_lots = sum(lot.remaining for lot in lots)
    pending = sum(hold.amount for hold in holds)
    summary = [
        f"available {fmt_points(balance.available)} = what is left in "
        f"{len(lots)} open lot{'s' if len(lots) != 1 else ''} ({fmt_points(in_lots)})"
        + ("" if in_lots == balance.available else "  ← MISMATCH: run `points-ledger verify`"),
        f"held {fmt_points(balance.held)} = {len(holds)} pending "
        f"hold{'s' if len(holds) != 1 else ''} ({fmt_points(pending)})"
        + ("" if pending == balance.held else "  ← MISMATCH: run `points-ledger verify`"),
    ]
    if balance.debt:
        summary.append(
            f"debt {fmt_points(balance.debt)}: clawed back after the points were spent; "
            "the next earnings repay it before reaching the wallet")
    else:
        summary.append("debt 0")
    if balance.expiring_soon:
        summary.append(f"{fmt_points(balance.expiring_soon)} expire within 30 days")

    data = {
        "customer_id": customer,
        "program": ops.program,
        "as_of": now,
        "balance": {"available": balance.available, "held": balance.held,
                    "debt": balance.debt, "expiring_30d": balance.expiring_soon},
        "lots": [{"lot_id": lot.lot_id, "expires_at": lot.expires_at, "amount": lot.amount,
                  "remaining": lot.remaining} for lot in lots],
        "recent_entries": [line_json(line) for line in lines],
        "pending_holds": [{"hold_key": h.hold_key, "amount": h.amount,
                           "timeout_at": h.timeout_at,
                           "destination": f"{h.destination.owner}/{h.destination.kind}"}
                          for h in holds],
        "summary": summary,
    }
    ops.output.emit(
        data,
        f"{customer} ({ops.program})",
        *(f"  {line}" for line in summary),
        table("Open lots (spent soonest-expiring first)",
              ["lot (entry)", "expires", "earned", "left"],
              [(lot.lot_id, fmt_time(lot.expires_at), fmt_points(lot.amount),
                fmt_points(lot.remaining)) for lot in lots],
              numeric=("lot (entry)", "earned", "left")),
        lines_table(f"Last {entries} entries", lines),
        table("Pending holds", ["hold key", "amount", "times out", "to"],
              [(h.hold_key, fmt_points(h.amount), fmt_time(h.timeout_at),
                f"{h.destination.owner}/{h.destination.kind}") for h in holds],
              numeric=("amount",)),
    )
