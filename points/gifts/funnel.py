"""The fission funnel: red packets sent -> opened -> claimed -> new customers, by generation.

A packet's **generation** is its sender's: 0 for a sender no packet brought, ``g`` for a
sender a packet brought at generation ``g`` (``packet_referrals``). The new customers a
generation-``g`` packet brings are generation ``g + 1`` (points/gifts/fission.py). Per packet
generation the funnel counts:

- ``sent``: packets created;
- ``opened``: distinct people who opened one (``packet_opens``: in the app, by reserving a
  share as a non-customer, or by claiming), once per person and packet; a person is their
  identity hash (the customer id when the bank has none), so a reservation and the onboarding
  it led to are one person;
- ``claimed``: shares claimed, and ``points_claimed``;
- ``new_customers``: customers who onboarded with the packet's code and whose referral the
  guards did not refuse (``packet_referrals``).

One group-by per table, joined in Python: the tables are small next to the ledger's, and the
dashboard shares the result between viewers (docs/operations-dashboard.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.sql import Select

from points.db import insert_ignore
from points.gifts.tables import packet_claims, packet_opens, packet_referrals, red_packets

__all__ = ["STEPS", "fission_funnel", "record_open"]

STEPS = ("sent", "opened", "claimed", "new_customers")


def record_open(conn: Connection, *, packet_id: str, opener: str, now: datetime) -> None:
    """``opener`` (an identity hash, or a customer id) opened ``packet_id``; once each."""
    insert_ignore(conn, packet_opens, {"packet_id": packet_id, "opener": opener,
                                       "opened_at": now})


def _by_generation(conn: Connection, query: Select[Any]) -> dict[int, tuple[int, int]]:
    return {int(g): (int(n), int(points or 0)) for g, n, points in conn.execute(query)}


def fission_funnel(conn: Connection, *, sender_prefix: str = "") -> dict[str, Any]:
    """The funnel by packet generation (every step listed, zeros included), and the total.

    ``sender_prefix`` keeps packets whose sender id starts with it (the demo's run)."""
    sender_gen = (select(packet_referrals.c.referee_id.label("customer_id"),
                         packet_referrals.c.generation).subquery())
    packets = (select(red_packets.c.packet_id,
                      func.coalesce(sender_gen.c.generation, 0).label("generation"))
               .select_from(red_packets.outerjoin(
                   sender_gen, sender_gen.c.customer_id == red_packets.c.sender_id))
               .where(red_packets.c.sender_id.like(f"{sender_prefix}%"))
               .subquery())
    g = packets.c.generation
    sent = _by_generation(conn, select(g, func.count(), func.sum(red_packets.c.total))
                          .select_from(packets.join(
                              red_packets, red_packets.c.packet_id == packets.c.packet_id))
                          .group_by(g))
    opened = _by_generation(conn, select(g, func.count(), func.count())
                            .select_from(packets.join(
                                packet_opens, packet_opens.c.packet_id == packets.c.packet_id))
                            .group_by(g))
    claimed = _by_generation(conn, select(g, func.count(), func.sum(packet_claims.c.points))
                             .select_from(packets.join(
                                 packet_claims, packet_claims.c.packet_id == packets.c.packet_id))
                             .group_by(g))
    brought = _by_generation(conn, select(g, func.count(), func.count())
                             .select_from(packets.join(
                                 packet_referrals,
                                 packet_referrals.c.packet_id == packets.c.packet_id))
                             .group_by(g))
    rows = []
    for generation in sorted(set(sent) | set(opened) | set(claimed) | set(brought)):
        rows.append({
            "generation": generation,
            "sent": sent.get(generation, (0, 0))[0],
            "points_sent": sent.get(generation, (0, 0))[1],
            "opened": opened.get(generation, (0, 0))[0],
            "claimed": claimed.get(generation, (0, 0))[0],
            "points_claimed": claimed.get(generation, (0, 0))[1],
            "new_customers": brought.get(generation, (0, 0))[0],
        })
    total = {step: sum(int(r[step]) for r in rows) for step in
             (*STEPS, "points_sent", "points_claimed")}
    return {"steps": list(STEPS), "generations": rows, "total": total}
