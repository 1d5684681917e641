"""Fission: red packets that bring new customers (docs/gifts.md, "Fission").

A non-customer who opens a packet reserves a share for ``reservation_hours`` under the
identity hash they give. When core banking onboards them on ``bank.customers`` with the
packet's code as their ``referral_code``, the bank desk hands the onboarding here: the share
is claimed for the new customer (their reserved one, or any share left), and a referral to the
packet's sender is recorded with its *generation* — one more than the sender's own (a sender
no packet brought is generation 0, so their recruits are generation 1). The referral itself
goes through the referral desk's guards and rules like any customer invite.
"""

# `desk` is imported as a module, not its names: desk imports points.exchange, whose bank desk
# imports this module, so desk is only partly initialised while this one loads.
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from points.db import insert_ignore
from points.exchange.tables import known_customers
from points.gifts import desk, split
from points.gifts.funnel import record_open
from points.gifts.policy import GiftSettings
from points.gifts.tables import packet_claims, packet_referrals, packet_reservations

__all__ = ["generation_of", "onboard", "packet_for_code", "record_generation", "reserve_share"]


def packet_for_code(conn: Connection, code: str | None) -> dict[str, Any] | None:
    """The packet a code names, when it is a packet claim code (not a referral code)."""
    if not code:
        return None
    wanted = split.normalise_claim_code(code)
    if len(wanted) != split.CODE_LENGTH or not set(wanted) <= set(split.CODE_ALPHABET):
        return None
    return desk.packet_row(conn, code=wanted)


def reserve_share(conn: Connection, *, code: str, contact_hash: str, now: datetime,
                  policy: GiftSettings) -> dict[str, Any]:
    """Keep a share for a non-customer until they onboard (or the reservation lapses)."""
    wanted = split.normalise_claim_code(code)

    def refuse(reason: str, detail: str = "") -> desk.GiftRefused:
        return desk.GiftRefused(reason, detail, subject="red_packet", subject_id=wanted)

    packet = desk.packet_row(conn, code=wanted)
    if packet is None:
        raise refuse("unknown_packet")
    packet_id = packet["packet_id"]
    mine = conn.execute(select(packet_reservations).where(
        packet_reservations.c.packet_id == packet_id,
        packet_reservations.c.contact_hash == contact_hash)).mappings().first()
    if mine is not None:
        return dict(mine)
    record_open(conn, packet_id=packet_id, opener=contact_hash, now=now)
    customer = conn.execute(select(known_customers.c.customer_id).where(
        known_customers.c.identity_hash == contact_hash)).first()
    if customer is not None:
        raise refuse("already_a_customer", "(claim the share in the app)")
    if packet["status"] != "open" or now >= packet["expires_at"]:
        raise refuse("packet_closed", f"({packet['status']})")
    reserved = conn.execute(select(func.count()).select_from(packet_reservations).where(
        packet_reservations.c.packet_id == packet_id,
        packet_reservations.c.used_by.is_(None),
        packet_reservations.c.reserved_until > now)).scalar_one()
    if int(packet["claimed_count"]) + int(reserved) >= int(packet["shares"]):
        raise refuse("packet_empty")
    until = min(now + timedelta(hours=policy.reservation_hours), packet["expires_at"])
    row = {"packet_id": packet_id, "contact_hash": contact_hash, "reserved_at": now,
           "reserved_until": until, "used_by": None}
    conn.execute(packet_reservations.insert().values(**row))
    return row


def generation_of(conn: Connection, customer_id: str) -> int:
    """0 for a customer no packet brought, else the generation they were brought at."""
    found = conn.execute(select(packet_referrals.c.generation).where(
        packet_referrals.c.referee_id == customer_id)).scalar()
    return 0 if found is None else int(found)


def onboard(conn: Connection, *, packet: dict[str, Any], customer_id: str, now: datetime,
            event_id: str, ledger_topic: str | None = None) -> dict[str, Any] | None:
    """Claim a share of ``packet`` for a customer who just onboarded with its code; the
    claim, or None after recording why not (the onboarding itself is never refused)."""
    try:
        return desk.claim_packet(conn, claimant_id=customer_id, code=packet["code"], now=now,
                                 ledger_topic=ledger_topic)
    except desk.GiftRefused as refused:
        desk.record_refusal(conn, refused, customer_id, now)
        return None


def record_generation(conn: Connection, *, packet: dict[str, Any], customer_id: str,
                      referral_id: str, now: datetime) -> int:
    """Record who brought ``customer_id`` (the packet's sender) and at which generation."""
    generation = generation_of(conn, packet["sender_id"]) + 1
    insert_ignore(conn, packet_referrals, {
        "referee_id": customer_id, "referrer_id": packet["sender_id"],
        "packet_id": packet["packet_id"], "generation": generation,
        "referral_id": referral_id, "at": now})
    return generation


def claims_of(conn: Connection, packet_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(packet_claims).where(packet_claims.c.packet_id == packet_id)
                        .order_by(packet_claims.c.share_no)).mappings()
    return [dict(r) for r in rows]
