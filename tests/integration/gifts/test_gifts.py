"""Gifts and red packets on the ledger (SQLite and PostgreSQL): holds, lineage, the draw,
expiry, refusals, and verify's packet checks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from points.gifts import desk
from points.gifts.desk import GiftRefused
from points.gifts.notices import GiftNotice, RedPacketNotice, gift_notice_adapter
from points.gifts.policy import GiftSettings
from points.gifts.tables import red_packets
from points.ledger import AccountRef, customer_lots, verify
from points.ledger.queries import account_balance
from points.outbox import outbox_table
from points.refusals import refusals
from tests.integration.gifts.support import (
    LATER,
    NOW,
    POLICY,
    SOON,
    assert_clean,
    customer,
    held,
    wallet,
)


def refused(engine: Engine, fn: object, customer_id: str) -> GiftRefused:
    """Run a desk call that must be refused; record the refusal as the API does."""
    with pytest.raises(GiftRefused) as info, engine.begin() as conn:
        fn(conn)  # type: ignore[operator]
    with engine.begin() as conn:
        desk.record_refusal(conn, info.value, customer_id, NOW)
    return info.value


def test_a_gift_is_held_then_posted_with_its_lots_expiry(engine: Engine) -> None:
    """A 300-point gift from a sender with 200 expiring soon and 200 later: held on sending,
    on acceptance the recipient gets a 200 lot expiring SOON and a 100 lot expiring LATER,
    the bank's issuance does not move and verify is clean."""
    customer(engine, "alice", points=400, code="ALICECODE")
    customer(engine, "bob", code="BOBCODE")
    with engine.connect() as conn:
        issuance_before = account_balance(conn, AccountRef.issuance("bank"))
    with engine.begin() as conn:
        gift = desk.send_gift(conn, sender_id="alice", gift_id="g1", points=300,
                              message="happy birthday", now=NOW, policy=POLICY,
                              referral_code="bobcode")
    assert (gift.status, gift.recipient_id) == ("pending", "bob")
    assert (wallet(engine, "alice"), held(engine, "alice"), wallet(engine, "bob")) == (
        100, 300, 0)
    with engine.begin() as conn:
        accepted = desk.accept_gift(conn, recipient_id="bob", gift_id="g1", now=NOW)
    assert accepted.status == "accepted"
    assert (wallet(engine, "alice"), held(engine, "alice"), wallet(engine, "bob")) == (
        100, 0, 300)
    with engine.connect() as conn:
        lots = [(lot.amount, lot.expires_at) for lot in customer_lots(conn, "bob")]
        assert account_balance(conn, AccountRef.issuance("bank")) == issuance_before
    assert lots == [(200, SOON), (100, LATER)]
    assert [row[1] for row in accepted.lineage or []] == [200, 100]
    with engine.begin() as conn:  # accepting again changes nothing
        assert desk.accept_gift(conn, recipient_id="bob", gift_id="g1", now=NOW).status == (
            "accepted")
    assert wallet(engine, "bob") == 300
    assert_clean(engine)


def test_an_immediate_gift_by_contact_hash_is_posted_at_once(engine: Engine) -> None:
    """With delivery 'immediate' the recipient (found by contact hash) has the points at once."""
    customer(engine, "alice", points=100)
    customer(engine, "carol", identity="hash-carol")
    policy = GiftSettings(delivery="immediate", min_account_age_days=7)
    with engine.begin() as conn:
        gift = desk.send_gift(conn, sender_id="alice", gift_id="g2", points=60, message="",
                              now=NOW, policy=policy, contact_hash="hash-carol")
    assert gift.status == "accepted"
    assert (wallet(engine, "alice"), wallet(engine, "carol")) == (40, 60)
    assert_clean(engine)


def test_an_unaccepted_gift_returns_to_the_sender(engine: Engine) -> None:
    """A gift not accepted within accept_hours is voided back by the sweep."""
    customer(engine, "alice", points=100)
    customer(engine, "bob", code="BOBCODE")
    with engine.begin() as conn:
        desk.send_gift(conn, sender_id="alice", gift_id="g3", points=50, message="",
                       now=NOW, policy=POLICY, referral_code="BOBCODE")
    later = NOW + timedelta(hours=POLICY.accept_hours, seconds=1)
    with engine.begin() as conn:
        assert desk.sweep(conn, now=later)["gifts_returned"] == 1
    assert (wallet(engine, "alice"), held(engine, "alice"), wallet(engine, "bob")) == (
        100, 0, 0)
    with engine.begin() as conn, pytest.raises(GiftRefused, match="gift_not_pending"):
        desk.accept_gift(conn, recipient_id="bob", gift_id="g3", now=later)
    assert_clean(engine)


def test_gift_refusals_change_nothing_and_are_recorded(engine: Engine) -> None:
    """To oneself (another account, same identity), too new an account, over the daily cap,
    more than the wallet has, an unknown code: refused with a reason, recorded, no points
    move."""
    customer(engine, "alice", points=1000, identity="same-person")
    customer(engine, "alice2", identity="same-person", code="ALICE2")
    customer(engine, "newbie", points=100, known_days=1)
    customer(engine, "bob", code="BOBCODE")
    capped = GiftSettings(daily_points_max=500, min_account_age_days=7)
    cases = [
        ("alice", lambda c: desk.send_gift(c, sender_id="alice", gift_id="r1", points=10,
                                           message="", now=NOW, policy=POLICY,
                                           referral_code="ALICE2"), "gift_to_oneself"),
        ("newbie", lambda c: desk.send_gift(c, sender_id="newbie", gift_id="r2", points=10,
                                            message="", now=NOW, policy=POLICY,
                                            referral_code="BOBCODE"), "account_too_new"),
        ("alice", lambda c: desk.send_gift(c, sender_id="alice", gift_id="r3", points=600,
                                           message="", now=NOW, policy=capped,
                                           referral_code="BOBCODE"), "daily_cap"),
        ("alice", lambda c: desk.send_gift(c, sender_id="alice", gift_id="r4", points=5000,
                                           message="", now=NOW, policy=POLICY,
                                           referral_code="BOBCODE"), "insufficient_points"),
        ("alice", lambda c: desk.send_gift(c, sender_id="alice", gift_id="r5", points=5,
                                           message="", now=NOW, policy=POLICY,
                                           referral_code="NOSUCH"), "unknown_recipient"),
    ]
    for who, call, code in cases:
        assert refused(engine, call, who).reason_code == code
    assert (wallet(engine, "alice"), held(engine, "alice"), wallet(engine, "bob")) == (
        1000, 0, 0)
    with engine.connect() as conn:
        recorded = conn.execute(select(refusals.c.customer_id, refusals.c.reason_code)
                                .where(refusals.c.source == "gifts")
                                .order_by(refusals.c.id)).all()
    assert [tuple(r) for r in recorded] == [(who, code) for who, _, code in cases]
    assert_clean(engine)


def test_a_random_packet_claimed_in_part_then_expired(engine: Engine) -> None:
    """1,000 points in 10 random shares: the whole total is held; 7 claims each post one
    share (>= 1) to the claimant; a second claim by the same identity, and the sender's
    own, are refused; at expiry the sweep returns the unclaimed rest; everything sums."""
    customer(engine, "sender", points=2000)
    for n in range(8):
        customer(engine, f"friend{n}", identity=f"person{n}")
    customer(engine, "friend0-alt", identity="person0")
    with engine.begin() as conn:
        packet = desk.create_packet(conn, sender_id="sender", packet_id="p1", total=1000,
                                    shares=10, split_mode="random", message="新年快乐",
                                    now=NOW, policy=POLICY)
    code = packet["code"]
    assert (wallet(engine, "sender"), held(engine, "sender")) == (1000, 1000)
    got = {}
    for n in range(7):
        with engine.begin() as conn:
            claim = desk.claim_packet(conn, claimant_id=f"friend{n}", code=code.lower(),
                                      now=NOW + timedelta(minutes=n))
        got[f"friend{n}"] = int(claim["points"])
        assert_clean(engine)
    for who, reason in (("friend0-alt", "already_claimed"), ("sender", "own_packet")):
        error = refused(engine, lambda c, w=who: desk.claim_packet(
            c, claimant_id=w, code=code, now=NOW), who)
        assert error.reason_code == reason
    with engine.begin() as conn:  # a retried claim is the same claim
        again = desk.claim_packet(conn, claimant_id="friend3", code=code, now=NOW)
    assert int(again["points"]) == got["friend3"]
    claimed = sum(got.values())
    assert all(points >= 1 for points in got.values())
    assert (wallet(engine, "sender"), held(engine, "sender")) == (1000, 1000 - claimed)
    for who, points in got.items():
        assert wallet(engine, who) == points
    expired_at = packet["expires_at"]
    with engine.begin() as conn:
        assert desk.sweep(conn, now=expired_at)["packets_expired"] == 1
        row = desk.packet_row(conn, packet_id="p1")
    assert row is not None and row["status"] == "expired"
    assert (wallet(engine, "sender"), held(engine, "sender")) == (2000 - claimed, 0)
    error = refused(engine, lambda c: desk.claim_packet(c, claimant_id="friend7", code=code,
                                                         now=expired_at), "friend7")
    assert error.reason_code == "packet_closed"
    assert_clean(engine)


def test_a_packet_claimed_out_gives_exactly_its_total(engine: Engine) -> None:
    """Five equal shares of 12 points: 3, 3, 2, 2, 2; then the packet is empty."""
    customer(engine, "sender", points=100)
    for n in range(6):
        customer(engine, f"f{n}")
    with engine.begin() as conn:
        code = desk.create_packet(conn, sender_id="sender", packet_id="p2", total=12,
                                  shares=5, split_mode="equal", message="", now=NOW,
                                  policy=POLICY)["code"]
    shares = []
    for n in range(5):
        with engine.begin() as conn:
            shares.append(int(desk.claim_packet(conn, claimant_id=f"f{n}", code=code,
                                                now=NOW)["points"]))
    assert shares == [3, 3, 2, 2, 2]
    error = refused(engine, lambda c: desk.claim_packet(c, claimant_id="f5", code=code,
                                                         now=NOW), "f5")
    assert error.reason_code == "packet_empty"
    assert (wallet(engine, "sender"), held(engine, "sender")) == (88, 0)
    assert_clean(engine)


def test_an_operator_void_returns_the_rest(engine: Engine) -> None:
    """Maker-checker void: ops-1 asks, ops-1 cannot approve, ops-2 approves; what was not
    claimed returns and the packet closes."""
    customer(engine, "sender", points=100)
    customer(engine, "f0")
    with engine.begin() as conn:
        code = desk.create_packet(conn, sender_id="sender", packet_id="p3", total=50,
                                  shares=5, split_mode="random", message="", now=NOW,
                                  policy=POLICY)["code"]
    with engine.begin() as conn:
        first = int(desk.claim_packet(conn, claimant_id="f0", code=code, now=NOW)["points"])
    with engine.begin() as conn:
        desk.request_void(conn, packet_id="p3", operator="ops-1", reason="spam", now=NOW)
    with pytest.raises(GiftRefused, match="same_operator"), engine.begin() as conn:
        desk.void_packet(conn, packet_id="p3", operator="ops-1", now=NOW)
    assert held(engine, "sender") == 50 - first
    with engine.begin() as conn:
        row = desk.void_packet(conn, packet_id="p3", operator="ops-2", now=NOW)
    assert (row["status"], row["resolved_by"]) == ("voided", "ops-2")
    assert (wallet(engine, "sender"), held(engine, "sender")) == (100 - first, 0)
    assert_clean(engine)


def test_verify_notices_a_packet_whose_books_do_not_add_up(engine: Engine) -> None:
    """Tampering with a packet's claimed points makes verify report the packet checks."""
    customer(engine, "sender", points=100)
    customer(engine, "f0")
    with engine.begin() as conn:
        code = desk.create_packet(conn, sender_id="sender", packet_id="p4", total=50,
                                  shares=5, split_mode="random", message="", now=NOW,
                                  policy=POLICY)["code"]
        desk.claim_packet(conn, claimant_id="f0", code=code, now=NOW)
        conn.execute(update(red_packets).values(claimed_points=red_packets.c.claimed_points + 1))
    with engine.connect() as conn:
        checks = {v.check for v in verify(conn).violations}
    assert {"packet_held_is_unclaimed", "packet_claims_sum"} <= checks


def test_every_notification_fits_the_published_contract(engine: Engine) -> None:
    """A gift sent and accepted, a packet created and a share claimed queue six points.ledger
    messages, each keyed by the customer told and decoding as docs/schemas/
    points.ledger.gifts.schema.json describes (the models that generate it): the sender's
    hold, post and the recipient's earn with the lots; no claim code in any of them."""
    customer(engine, "alice", points=400, code="ALICECODE")
    customer(engine, "bob", code="BOBCODE")
    topic = "points.ledger"
    with engine.begin() as conn:
        desk.send_gift(conn, sender_id="alice", gift_id="g-note", points=30, message="hi",
                       now=NOW, policy=POLICY, referral_code="bobcode", ledger_topic=topic)
        desk.accept_gift(conn, recipient_id="bob", gift_id="g-note", now=NOW,
                         ledger_topic=topic)
        code = desk.create_packet(conn, sender_id="alice", packet_id="p-note", total=20,
                                  shares=2, split_mode="equal", message="", now=NOW,
                                  policy=POLICY, ledger_topic=topic)["code"]
        desk.claim_packet(conn, claimant_id="bob", code=code, now=NOW, ledger_topic=topic)
    with engine.connect() as conn:
        rows = conn.execute(select(outbox_table.c.message_key, outbox_table.c.message_value)
                            .where(outbox_table.c.topic == topic)
                            .order_by(outbox_table.c.id)).all()
    notes = [(key.decode(), gift_notice_adapter.validate_json(value)) for key, value in rows]
    assert all(key == note.customer_id for key, note in notes)
    assert all(code.encode() not in value for _, value in rows)
    seen = [(type(n).__name__, n.customer_id, n.kind, n.points) for _, n in notes]
    assert seen == [
        ("GiftNotice", "alice", "hold", -30), ("GiftNotice", "alice", "post", 0),
        ("GiftNotice", "bob", "earn", 30), ("RedPacketNotice", "alice", "hold", -20),
        ("RedPacketNotice", "alice", "post", 0), ("RedPacketNotice", "bob", "earn", 10)]
    earned = notes[2][1]
    assert isinstance(earned, GiftNotice) and earned.gift.lots
    claimed = notes[5][1]
    assert isinstance(claimed, RedPacketNotice)
    assert (claimed.red_packet.share_no, claimed.red_packet.sender_id) == (1, "alice")
    assert all(b"null" not in value for _, value in rows)
