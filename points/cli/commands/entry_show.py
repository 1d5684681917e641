"""``entry show KEY``: one ledger entry by its idempotency key, with its legs and reason."""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import ops_of
from points.cli.errors import NotFound
from points.cli.output import fmt_points, fmt_time, key_values, reason_text, table
from points.ledger import entry_by_key


def command(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The entry's idempotency key.", show_default=False)],
) -> None:
    """Show one entry: kind, status, amount, reason, legs."""
    ops = ops_of(ctx)
    with ops.read() as conn:
        entry = entry_by_key(conn, key)
    if entry is None:
        raise NotFound(f"no ledger entry with key {key!r}")
    data = {
        "entry_id": entry.entry_id,
        "idempotency_key": entry.idempotency_key,
        "kind": entry.kind,
        "status": entry.status,
        "program": entry.program,
        "customer_id": entry.customer_id,
        "amount": entry.amount,
        "reject_code": entry.reject_code,
        "reason": entry.reason.to_json(),
        "reverses_entry_id": entry.reverses_entry_id,
        "target_entry_id": entry.target_entry_id,
        "created_at": entry.created_at,
        "legs": [{"debit": f"{d.owner}/{d.kind}@{d.program}",
                  "credit": f"{c.owner}/{c.kind}@{c.program}", "amount": amount}
                 for d, c, amount in entry.legs],
    }
    pairs: list[tuple[str, object]] = [
        ("entry", entry.entry_id), ("key", entry.idempotency_key), ("kind", entry.kind),
        ("status", entry.status + (f" ({entry.reject_code})" if entry.reject_code else "")),
        ("program", entry.program), ("customer", entry.customer_id),
        ("amount", None if entry.amount is None else fmt_points(entry.amount)),
        ("reason", reason_text(entry.reason)), ("created", fmt_time(entry.created_at)),
    ]
    if entry.reverses_entry_id is not None:
        pairs.append(("reverses entry", entry.reverses_entry_id))
    if entry.target_entry_id is not None:
        pairs.append(("refers to entry", entry.target_entry_id))
    ops.output.emit(
        data,
        key_values(f"Entry {entry.idempotency_key}", pairs),
        table("Legs", ["debit", "credit", "amount"],
              [(f"{d.owner}/{d.kind}@{d.program}", f"{c.owner}/{c.kind}@{c.program}",
                fmt_points(amount)) for d, c, amount in entry.legs],
              numeric=("amount",)),
    )
