"""Fission: a red packet's code used at onboarding claims a share for the new customer and
records a referral to the sender, at one generation more than the sender's own."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from points.gifts import desk, fission
from points.gifts.policy import GiftSettings
from points.gifts.tables import packet_referrals
from points.referrals import ReferralStatus
from tests.integration.exchange.support import Exchange, bank, onboarded

POLICY = GiftSettings(min_account_age_days=0)


def ident(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def join(x: Exchange, customer_id: str, code: str | None, at: datetime) -> None:
    body: dict[str, Any] = {**onboarded(customer_id, code, at), "identity_hash": ident(customer_id)}
    x.service.process_bank([bank(x, "bank_customers", body)])


def packet(x: Exchange, sender: str, packet_id: str, shares: int) -> dict[str, Any]:
    with x.engine.begin() as conn:
        return desk.create_packet(conn, sender_id=sender, packet_id=packet_id, total=100,
                                  shares=shares, split_mode="random", message="",
                                  now=x.clock.now, policy=POLICY)


def test_onboarding_with_a_packet_code_claims_a_share_and_counts_generations(
        exchange: Exchange) -> None:
    """alice (no referrer) drops a packet; dan reserves a share while not a customer; dan and
    erin onboard with the code: each gets a share, both are signed-up referrals of alice at
    generation 1; erin's own packet brings frank at generation 2. A customer's claim cannot
    take dan's reserved share (cara is refused shares_reserved)."""
    x = exchange
    now = x.clock.now
    join(x, "alice", None, now - timedelta(days=30))
    join(x, "bob", None, now - timedelta(days=30))
    x.fund("alice", 1000)
    first = packet(x, "alice", "pa", shares=2)
    with x.engine.begin() as conn:
        fission.reserve_share(conn, code=first["code"], contact_hash=ident("dan"), now=now,
                              policy=POLICY)
    with x.engine.begin() as conn:  # one share left unreserved: bob takes it
        desk.claim_packet(conn, claimant_id="bob", code=first["code"], now=now)
    join(x, "cara", None, now - timedelta(days=30))
    with x.engine.begin() as conn, pytest.raises(desk.GiftRefused, match="shares_reserved"):
        desk.claim_packet(conn, claimant_id="cara", code=first["code"], now=now)
    second = packet(x, "alice", "pb", shares=3)
    join(x, "dan", first["code"], now)  # the reserved share of the full packet
    join(x, "erin", second["code"], now)
    x.fund("erin", 500)
    third = packet(x, "erin", "pc", shares=2)
    join(x, "frank", third["code"], now)
    with x.engine.connect() as conn:
        rows = {r.referee_id: (r.referrer_id, r.generation) for r in conn.execute(
            select(packet_referrals))}
        claimed = {c["claimant_id"] for p in ("pa", "pb", "pc")
                   for c in fission.claims_of(conn, p)}
    assert rows == {"dan": ("alice", 1), "erin": ("alice", 1), "frank": ("erin", 2)}
    assert {"bob", "dan", "erin", "frank"} <= claimed
    statuses = {name: [r.status for r in x.service.referrals_of(name)]
                for name in ("dan", "erin", "frank")}
    assert statuses == {n: [ReferralStatus.SIGNED_UP] for n in ("dan", "erin", "frank")}
    x.verify_clean()
