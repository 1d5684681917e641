"""``balance CUSTOMER``: available, held, debt, and what expires within 30 and 90 days."""

from __future__ import annotations

from datetime import timedelta

import typer

from points.cli.context import ops_of
from points.cli.errors import NotFound
from points.cli.options import Customer
from points.cli.output import fmt_points, key_values
from points.cli.store import customer_known
from points.ledger import customer_balance


def command(ctx: typer.Context, customer: Customer) -> None:
    """Show a customer's balance."""
    ops = ops_of(ctx)
    now = ops.now()
    with ops.read() as conn:
        if not customer_known(conn, ops.program, customer):
            raise NotFound(f"customer {customer!r} has no accounts in program {ops.program!r}")
        soon = customer_balance(conn, customer, program=ops.program, now=now,
                                expiring_within=timedelta(days=30))
        later = customer_balance(conn, customer, program=ops.program, now=now,
                                 expiring_within=timedelta(days=90))
    data = {
        "customer_id": customer,
        "program": ops.program,
        "as_of": now,
        "available": soon.available,
        "held": soon.held,
        "debt": soon.debt,
        "expiring_30d": soon.expiring_soon,
        "expiring_90d": later.expiring_soon,
    }
    ops.output.emit(data, key_values(f"{customer} ({ops.program})", [
        ("available", fmt_points(soon.available)),
        ("held", fmt_points(soon.held)),
        ("debt", fmt_points(soon.debt)),
        ("expiring within 30 days", fmt_points(soon.expiring_soon)),
        ("expiring within 90 days", fmt_points(later.expiring_soon)),
    ]))
