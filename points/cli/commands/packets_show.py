"""``packets show PACKET_ID``: one packet, who claimed what, reservations, who it brought."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy import select

from points.cli.context import ops_of
from points.cli.errors import NotFound
from points.cli.output import fmt_points, fmt_time, key_values, table
from points.gifts import desk, fission
from points.gifts.tables import packet_referrals, packet_reservations


def command(
    ctx: typer.Context,
    packet_id: Annotated[str, typer.Argument(help="The packet id (p_...).", show_default=False)],
) -> None:
    """Show one red packet with its claims, reservations and the customers it brought."""
    ops = ops_of(ctx)
    with ops.read() as conn:
        packet = desk.packet_row(conn, packet_id=packet_id)
        if packet is None:
            raise NotFound(f"no packet {packet_id!r}")
        claims = fission.claims_of(conn, packet_id)
        reservations = [dict(r) for r in conn.execute(select(packet_reservations).where(
            packet_reservations.c.packet_id == packet_id)).mappings()]
        brought = [dict(r) for r in conn.execute(select(packet_referrals).where(
            packet_referrals.c.packet_id == packet_id)).mappings()]
    shown: dict[str, Any] = {k: v for k, v in packet.items() if k != "seed"}
    ops.output.emit(
        {**packet, "claims": claims, "reservations": reservations, "brought": brought},
        key_values(f"Red packet {packet_id}", [
            (k, fmt_time(v) if k.endswith("_at") and v is not None else v)
            for k, v in shown.items()]),
        table("Claims", ["share", "claimant", "points", "left before", "at"],
              [(c["share_no"], c["claimant_id"], fmt_points(c["points"]),
                fmt_points(c["remaining_before"]), fmt_time(c["claimed_at"])) for c in claims],
              numeric=("points", "left before")),
        table("Reservations", ["contact hash", "until", "used by"],
              [(r["contact_hash"][:16] + "…", fmt_time(r["reserved_until"]), r["used_by"] or "")
               for r in reservations]),
        table("Customers it brought", ["customer", "referrer", "generation", "referral"],
              [(b["referee_id"], b["referrer_id"], b["generation"], b["referral_id"])
               for b in brought]),
    )
