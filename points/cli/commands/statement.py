"""``statement CUSTOMER [--limit N]``: committed entries, newest first, with their effect."""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import ops_of
from points.cli.errors import NotFound
from points.cli.options import Customer
from points.cli.output import fmt_signed, fmt_time, reason_text, table
from points.cli.store import customer_known
from points.ledger import StatementLine, statement


def line_json(line: StatementLine) -> dict[str, object]:
    return {
        "entry_id": line.entry_id,
        "idempotency_key": line.idempotency_key,
        "kind": line.kind,
        "created_at": line.created_at,
        "wallet_delta": line.wallet_delta,
        "held_delta": line.held_delta,
        "debt_delta": line.debt_delta,
        "reason": line.reason.to_json(),
        "reverses_entry_id": line.reverses_entry_id,
    }


def lines_table(title: str, lines: list[StatementLine]) -> object:
    return table(
        title,
        ["entry", "time", "kind", "key", "wallet", "held", "debt", "reason"],
        [
            (line.entry_id, fmt_time(line.created_at), line.kind
             + (f" of #{line.reverses_entry_id}" if line.reverses_entry_id else ""),
             line.idempotency_key, fmt_signed(line.wallet_delta), fmt_signed(line.held_delta),
             fmt_signed(line.debt_delta), reason_text(line.reason))
            for line in lines
        ],
        numeric=("entry", "wallet", "held", "debt"),
    )


def command(
    ctx: typer.Context,
    customer: Customer,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000,
                                       help="How many entries, newest first.")] = 20,
) -> None:
    """Show a customer's statement."""
    ops = ops_of(ctx)
    with ops.read() as conn:
        if not customer_known(conn, ops.program, customer):
            raise NotFound(f"customer {customer!r} has no accounts in program {ops.program!r}")
        lines = statement(conn, customer, program=ops.program, limit=limit)
    ops.output.emit(
        {"customer_id": customer, "program": ops.program,
         "entries": [line_json(line) for line in lines]},
        lines_table(f"Statement of {customer} ({ops.program}), newest first", lines),
    )
