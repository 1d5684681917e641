"""The outbound swap saga and inbound credits on the real PostgreSQL ledger, with the simulated
partner's own decision logic answering in process: every path ends in a clean verify."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from points.dead_letters import dead_letters
from points.exchange.tables import swap_replies
from points.ledger import AccountRef, account_balance, customer_balance, customer_holds
from points.partners import (
    DailyLimitExceeded,
    MemberNotLinked,
    QuoteExpired,
)
from tests.integration.exchange.support import Exchange, event

pytestmark = pytest.mark.integration


def balance(x: Exchange, customer: str) -> tuple[int, int]:
    with x.engine.connect() as conn:
        b = customer_balance(conn, customer, now=x.clock.now)
    return b.available, b.held


def clearing(x: Exchange, partner: str) -> int:
    with x.engine.connect() as conn:
        return account_balance(conn, AccountRef.clearing("bank", partner))


def replies(x: Exchange) -> list[tuple[str, str, str]]:
    with x.engine.connect() as conn:
        rows = conn.execute(
            select(swap_replies.c.swap_id, swap_replies.c.outcome, swap_replies.c.reason)
            .order_by(swap_replies.c.id)
        ).all()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def open_swap(x: Exchange, customer: str, partner: str = "ridehail", points: int = 400) -> str:
    q = x.service.quote(customer, partner, points)
    view = x.service.request_swap(customer, q.quote_id)
    assert view.status == "pending", view
    return view.swap_id


def test_swap_needs_a_membership_validated_by_the_partner(exchange: Exchange) -> None:
    """Before member_linked arrives, accepting a quote refuses with member_not_linked and holds
    nothing; after the partner links the member, the same kind of swap goes through."""
    x = exchange
    x.fund("c1", 1000)
    q = x.service.quote("c1", "ridehail", 400)
    with pytest.raises(MemberNotLinked):
        x.service.request_swap("c1", q.quote_id)
    x.service.request_link("c1", "ridehail", "R-1")
    assert x.service.link("c1", "ridehail").status == "requested"  # type: ignore[union-attr]
    with pytest.raises(MemberNotLinked):
        x.service.request_swap("c1", x.service.quote("c1", "ridehail", 500).quote_id)
    x.round_trip("ridehail")
    assert x.service.link("c1", "ridehail").status == "linked"  # type: ignore[union-attr]
    assert balance(x, "c1") == (1000, 0)
    open_swap(x, "c1")
    assert balance(x, "c1") == (600, 400)
    x.verify_clean()


def test_confirmed_swap_posts_the_hold_to_the_partners_clearing_account(exchange: Exchange) -> None:
    """quote -> one transaction (hold, swap row, signed request in the outbox) -> the partner
    confirms -> the hold is posted: wallet down by the points, clearing up, status completed."""
    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1", points=400)
    requests = x.pending_requests("ridehail")
    assert len(requests) == 1 and requests[0]["dedupe_key"] == f"swap:{swap_id}:request"
    with x.engine.connect() as conn:
        holds = customer_holds(conn, "c1")
    assert [(h.hold_key, h.amount) for h in holds] == [(f"swap:{swap_id}:hold", 400)]
    x.round_trip("ridehail")
    view = x.service.swap_status("c1", swap_id)
    assert view is not None and (view.status, view.reason) == ("completed", "partner_confirmed")
    assert view.partner_reference is not None
    assert balance(x, "c1") == (600, 0)
    assert clearing(x, "ridehail") == 400
    assert x.service.swap_status("someone-else", swap_id) is None
    x.verify_clean()


def test_fee_is_held_with_the_points_and_posted_to_the_bank(exchange: Exchange) -> None:
    """eshop charges 1 % (min 10): 1000 points cost 1010; on confirmation 1000 go to eshop's
    clearing account and the 10-point fee to the bank."""
    x = exchange
    x.fund("c1", 2000)
    x.link("c1", "eshop")
    swap_id = open_swap(x, "c1", "eshop", 1000)
    assert balance(x, "c1") == (990, 1010)
    x.round_trip("eshop")
    assert x.service.swap_status("c1", swap_id).status == "completed"  # type: ignore[union-attr]
    assert balance(x, "c1") == (990, 0)
    assert clearing(x, "eshop") == 1000
    x.verify_clean()


def test_rejected_swap_voids_the_hold_and_shows_the_partners_reason(exchange: Exchange) -> None:
    """The partner rejects: the points come back and the customer sees
    rejected / partner_rejected: member_not_found."""
    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    x.take_requests()
    x.service.process([x.signed("ridehail", event(
        "swap_rejected", "c1", "ridehail", "rej-1", x.clock.now, swap_id=swap_id,
        reason_code="member_not_found", reason="no such rider"))])
    view = x.service.swap_status("c1", swap_id)
    assert view is not None
    assert (view.status, view.reason) == ("rejected", "partner_rejected: member_not_found")
    assert balance(x, "c1") == (1000, 0) and clearing(x, "ridehail") == 0
    x.verify_clean()


def test_deadline_voids_the_hold_cancels_at_the_partner_and_late_replies_change_nothing(
    exchange: Exchange,
) -> None:
    """No reply within 120 s: the timer voids the hold and queues swap_cancelled; a
    confirmation arriving afterwards is recorded as late_confirmation and moves nothing."""
    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    request = x.take_requests("ridehail")
    x.clock.advance(seconds=60)
    assert x.service.expire_due() == 0
    x.clock.advance(seconds=61)
    assert x.service.expire_due() == 1
    view = x.service.swap_status("c1", swap_id)
    assert view is not None and (view.status, view.reason) == ("expired", "deadline_passed")
    assert balance(x, "c1") == (1000, 0)
    cancel = x.pending_requests("ridehail")
    assert [r["dedupe_key"] for r in cancel] == [f"swap:{swap_id}:cancel"]
    late = x.answers(request)  # the partner finally answers the original request
    x.service.process(late)
    assert balance(x, "c1") == (1000, 0) and clearing(x, "ridehail") == 0
    assert replies(x)[-2:] == [
        (swap_id, "applied", "deadline_passed"),
        (swap_id, "ignored", "late_confirmation"),
    ]
    assert x.service.expire_due() == 0
    x.verify_clean()


def test_reply_processed_after_the_deadline_expires_the_swap_instead(exchange: Exchange) -> None:
    """Our clock decides: a confirmation processed after the deadline (the timer had not run
    yet) expires the swap rather than posting a timed-out hold."""
    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    requests = x.take_requests("ridehail")
    x.clock.advance(seconds=121)
    x.service.process(x.answers(requests))
    assert x.service.swap_status("c1", swap_id).status == "expired"  # type: ignore[union-attr]
    assert balance(x, "c1") == (1000, 0)
    x.verify_clean()


def test_duplicate_unknown_wrong_partner_and_mismatched_replies_change_nothing(
    exchange: Exchange,
) -> None:
    """A duplicate confirmation (same bytes, and a re-sent one under a new event id), one for
    an unknown swap, one from another partner and one with other amounts are each recorded
    with their reason; the swap is posted exactly once."""
    x = exchange
    x.fund("c1", 2000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    x.take_requests()
    now = x.clock.now
    mismatch = x.signed("ridehail", event(
        "swap_confirmed", "c1", "ridehail", "conf-0", now, swap_id=swap_id,
        partner_reference="R-0", points=400, partner_points=99))
    confirm = x.signed("ridehail", event(
        "swap_confirmed", "c1", "ridehail", "conf-1", now, swap_id=swap_id,
        partner_reference="R-1", points=400, partner_points=100))
    resent = x.signed("ridehail", event(
        "swap_confirmed", "c1", "ridehail", "conf-1b", now, swap_id=swap_id,
        partner_reference="R-1", points=400, partner_points=100))
    unknown = x.signed("ridehail", event(
        "swap_confirmed", "c1", "ridehail", "conf-2", now, swap_id="sw-nope",
        partner_reference="R-2", points=400, partner_points=100))
    foreign = x.signed("eshop", event(
        "swap_confirmed", "c1", "eshop", "conf-3", now, swap_id=swap_id,
        partner_reference="E-3", points=400, partner_points=100))
    outcome = x.service.process([mismatch, confirm, confirm, resent, unknown, foreign])
    assert outcome.duplicates == 1
    x.service.process([confirm])  # a replay of the whole message later
    assert replies(x) == [
        (swap_id, "ignored", "amount_mismatch"),
        (swap_id, "applied", "partner_confirmed"),
        (swap_id, "ignored", "duplicate_confirmation"),
        ("sw-nope", "ignored", "unknown_swap"),
        (swap_id, "ignored", "wrong_partner"),
    ]
    assert balance(x, "c1") == (1600, 0) and clearing(x, "ridehail") == 400
    x.verify_clean()


def test_wallet_that_cannot_cover_the_swap_stores_it_rejected_with_nothing_held(
    exchange: Exchange,
) -> None:
    """400 points asked, 300 available: the swap is rejected (insufficient_points), no request
    goes to the partner, the wallet is untouched."""
    x = exchange
    x.fund("c1", 300)
    x.link("c1", "ridehail")
    q = x.service.quote("c1", "ridehail", 400)
    view = x.service.request_swap("c1", q.quote_id)
    assert (view.status, view.reason) == ("rejected", "insufficient_points")
    assert x.pending_requests("ridehail") == [] and balance(x, "c1") == (300, 0)
    assert x.service.request_swap("c1", q.quote_id) == view  # accepting again: same swap
    x.verify_clean()


def test_quote_expiry_and_daily_limit_are_enforced(exchange: Exchange) -> None:
    """A quote past its 300 s validity is refused (quote_expired); swaps beyond the 40 000
    points daily limit to ridehail are refused (daily_limit_exceeded), pending ones counted."""
    x = exchange
    x.fund("c1", 100_000)
    x.link("c1", "ridehail")
    stale = x.service.quote("c1", "ridehail", 400)
    x.clock.advance(seconds=301)
    with pytest.raises(QuoteExpired):
        x.service.request_swap("c1", stale.quote_id)
    open_swap(x, "c1", points=40_000)
    x.clock.advance(seconds=1)
    with pytest.raises(DailyLimitExceeded):
        x.service.request_swap("c1", x.service.quote("c1", "ridehail", 400).quote_id)
    x.verify_clean()


def test_inbound_swap_credits_the_wallet_once_per_partner_reference(exchange: Exchange) -> None:
    """500 ride coins in at 3 points each: 1500 points from ridehail's clearing account; the
    partner re-sending it under a new event id credits nothing more; the airline offers no
    inbound swaps (inbound_not_offered, dead-lettered)."""
    x = exchange
    now = x.clock.now
    first = x.signed("ridehail", event(
        "inbound_swap", "c1", "ridehail", "in-1", now, swap_id="rs-1",
        partner_reference="RIN-1", partner_points=500))
    again = x.signed("ridehail", event(
        "inbound_swap", "c1", "ridehail", "in-1-again", now, swap_id="rs-1",
        partner_reference="RIN-1", partner_points=500))
    airline = x.signed("airline", event(
        "inbound_swap", "c1", "airline", "in-2", now, swap_id="as-1",
        partner_reference="AIN-1", partner_points=500))
    outcome = x.service.process([first])
    assert outcome.inbound_points == 1500
    outcome = x.service.process([again, airline])
    assert dict(outcome.rejected_reasons) == {"inbound_not_offered": 1}
    assert balance(x, "c1") == (1500, 0)
    assert clearing(x, "ridehail") == -1500
    x.verify_clean()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered", "bad_signature"),
        ("replayed", "stale"),
        ("wrong_key", "bad_signature"),
        ("wrong_topic", "wrong_topic"),
        ("unsigned", "unsigned"),
        ("unknown_key", "unknown_key"),
    ],
)
def test_unauthentic_partner_messages_go_to_the_dlq_and_move_nothing(
    exchange: Exchange, case: str, reason: str
) -> None:
    """A confirmation (and an inbound credit) that is tampered with, replayed outside the
    window, signed with the wrong secret, signed by another partner, unsigned or under an
    unknown key id: dead-lettered with the verdict as reason, the swap stays pending and no
    point moves. The valid original then completes the swap."""
    from points.signing import SigningKey, sign

    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    x.take_requests()
    body = event("swap_confirmed", "c1", "ridehail", "conf-1", x.clock.now, swap_id=swap_id,
                 partner_reference="R-1", points=400, partner_points=100)
    inbound = event("inbound_swap", "c1", "ridehail", "in-1", x.clock.now, swap_id="rs-1",
                    partner_reference="RIN-1", partner_points=500)
    valid = x.signed("ridehail", body)
    bad = []
    for b in (body, inbound):
        m = x.signed("ridehail", b)
        if case == "tampered":
            m = x.inbound(m.topic, m.key, m.value.replace(b"400", b"401")  # type: ignore[union-attr]
                          .replace(b"500", b"900"), m.headers)
        elif case == "replayed":
            m = x.signed("ridehail", b, signed_at=x.clock.now.replace(minute=x.clock.now.minute)
                         - __import__("datetime").timedelta(seconds=301))
        elif case == "wrong_key":
            forged = SigningKey(x.key("ridehail").key_id, "ridehail", b"\x07" * 32)
            m = x.inbound(m.topic, m.key, m.value, sign(m.value or b"", forged, x.clock.now))
        elif case == "wrong_topic":
            m = x.signed("ridehail", b, signer="eshop")
        elif case == "unsigned":
            m = x.inbound(m.topic, m.key, m.value, ())
        elif case == "unknown_key":
            stranger = SigningKey("nobody-1", "ridehail", b"\x08" * 32)
            m = x.inbound(m.topic, m.key, m.value, sign(m.value or b"", stranger, x.clock.now))
        bad.append(m)
    outcome = x.service.process(bad)
    assert dict(outcome.rejected_reasons) == {reason: 2}
    with x.engine.connect() as conn:
        dead = conn.execute(select(dead_letters.c.reason_code, dead_letters.c.message_value)).all()
    assert sorted(r for r, _ in dead) == [reason, reason]
    assert {v for _, v in dead} == {m.value for m in bad}
    assert x.service.swap_status("c1", swap_id).status == "pending"  # type: ignore[union-attr]
    assert balance(x, "c1") == (600, 400) and replies(x) == []
    x.service.process([valid])
    assert x.service.swap_status("c1", swap_id).status == "completed"  # type: ignore[union-attr]
    x.verify_clean()
