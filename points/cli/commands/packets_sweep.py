"""``packets sweep``: return expired packets' unclaimed points and unaccepted gifts.

The timer for gifts and packets: run it from cron (or a loop) every minute. Safe to run
twice: a packet or gift is returned once.
"""

from __future__ import annotations

import typer

from points.cli.context import ops_of
from points.gifts import desk


def command(ctx: typer.Context) -> None:
    """Expire due red packets and return gifts not accepted in time."""
    ops = ops_of(ctx)
    with ops.engine().begin() as conn:
        done = desk.sweep(conn, now=ops.now())
    ops.output.emit(done, f"{done['packets_expired']} packets expired, "
                          f"{done['gifts_returned']} gifts returned")
