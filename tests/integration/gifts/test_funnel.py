"""The fission funnel (points/gifts/funnel.py) on SQLite and PostgreSQL: sent, opened,
claimed and new customers by packet generation, from packets created and claimed through the
desk, a reservation and onboardings recorded as fission does."""

from __future__ import annotations

from sqlalchemy import Engine

from points.gifts import desk, fission
from points.gifts.funnel import fission_funnel, record_open
from tests.integration.gifts.support import NOW, POLICY, assert_clean, customer


def test_the_funnel_counts_each_step_by_generation(engine: Engine) -> None:
    """alice (generation 0) sends a 4-share packet: carol opens it twice (one person, one
    open) and walks away, bob claims, a non-customer reserves a share and onboards as nina
    (one person: the reservation's contact hash is nina's identity), who is generation 1;
    nina's own packet is claimed by olga, who was brought by it (generation 2)."""
    customer(engine, "alice", points=1000)
    customer(engine, "bob")
    customer(engine, "carol")
    with engine.begin() as conn:
        first = desk.create_packet(conn, sender_id="alice", packet_id="p-g0", total=400,
                                   shares=4, split_mode="equal", message="", now=NOW,
                                   policy=POLICY, expires_in=None)
        for _ in range(2):
            record_open(conn, packet_id="p-g0", opener=desk.identity_of(conn, "carol"),
                        now=NOW)
        desk.claim_packet(conn, claimant_id="bob", code=first["code"], now=NOW)
        fission.reserve_share(conn, code=first["code"], contact_hash="id-nina", now=NOW,
                              policy=POLICY)
    customer(engine, "nina", identity="id-nina", known_days=30)
    with engine.begin() as conn:
        fission.onboard(conn, packet=first, customer_id="nina", now=NOW, event_id="onb-nina")
        fission.record_generation(conn, packet=first, customer_id="nina",
                                  referral_id="ref-nina", now=NOW)
        second = desk.create_packet(conn, sender_id="nina", packet_id="p-g1", total=20,
                                    shares=2, split_mode="equal", message="", now=NOW,
                                    policy=POLICY, expires_in=None)
    customer(engine, "olga", known_days=0)
    with engine.begin() as conn:
        fission.onboard(conn, packet=second, customer_id="olga", now=NOW, event_id="onb-olga")
        fission.record_generation(conn, packet=second, customer_id="olga",
                                  referral_id="ref-olga", now=NOW)
        funnel = fission_funnel(conn)
    assert funnel["steps"] == ["sent", "opened", "claimed", "new_customers"]
    assert funnel["generations"] == [
        {"generation": 0, "sent": 1, "points_sent": 400, "opened": 3, "claimed": 2,
         "points_claimed": 200, "new_customers": 1},
        {"generation": 1, "sent": 1, "points_sent": 20, "opened": 1, "claimed": 1,
         "points_claimed": 10, "new_customers": 1},
    ]
    assert funnel["total"]["sent"] == 2 and funnel["total"]["new_customers"] == 2
    with engine.connect() as conn:
        assert fission_funnel(conn, sender_prefix="nobody")["generations"] == []
    assert_clean(engine)
