"""The gift and red packet routes: create with an Idempotency-Key, open, claim, list, status
with who claimed what, and refusals as problems the customer can also list."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from points.exchange.tables import known_customers, referral_codes
from tests.integration.api.conftest import NOW, Api, assert_problem


def known(engine: Engine, customer_id: str, *, days: int = 30, code: str | None = None,
          identity: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(known_customers.insert().values(
            customer_id=customer_id, known_since=NOW - timedelta(days=days), evidence="test",
            identity_hash=identity or f"id-{customer_id}", updated_at=NOW))
        if code:
            conn.execute(referral_codes.insert().values(
                code=code, owner_kind="customer", owner_id=customer_id, created_at=NOW))


def test_a_gift_is_sent_accepted_and_listed_on_both_sides(api: Api) -> None:
    """alice sends bob 40 points by his referral code; a retry with the same key returns the
    same gift; bob accepts; both lists show it and bob's balance has the points."""
    known(api.engine, "alice")
    known(api.engine, "bob", code="BOBCODE23")
    api.fund("alice", 100)
    body = {"points": 40, "message": "thanks for lunch", "recipient_referral_code": "BOBCODE23"}
    first = api.post("/v1/me/gifts", body, "gift-1")
    assert first.status_code == 201, first.text
    gift = first.json()
    assert (gift["status"], gift["counterparty_id"], gift["direction"]) == (
        "pending", "bob", "sent")
    again = api.post("/v1/me/gifts", body, "gift-1")
    assert again.json()["gift_id"] == gift["gift_id"]
    assert api.get("/v1/me/balance").json()["held"] == 40
    accepted = api.post(f"/v1/me/gifts/{gift['gift_id']}/accept", None, "acc-1", sub="bob")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["lots"][0][1] == 40
    received = api.get("/v1/me/gifts", sub="bob", direction="received").json()["items"]
    assert [(g["gift_id"], g["counterparty_id"]) for g in received] == [
        (gift["gift_id"], "alice")]
    assert api.get("/v1/me/balance", sub="bob").json()["available"] == 40


def test_a_refused_gift_is_a_problem_and_a_listed_refusal(api: Api) -> None:
    """A gift to oneself (another account with the same identity) answers 409 gift_refused
    with the reason first, and GET /v1/me/refusals lists it."""
    known(api.engine, "alice", identity="one-person")
    known(api.engine, "alice-2", identity="one-person", code="ALICE2XX")
    api.fund("alice", 100)
    response = api.post("/v1/me/gifts", {"points": 5, "recipient_referral_code": "ALICE2XX"},
                        "self-1")
    problem = assert_problem(response, 409, "gift_refused")
    assert problem["detail"].startswith("gift_to_oneself")
    items = api.get("/v1/me/refusals").json()["items"]
    assert [(r["subject"], r["reason_code"]) for r in items] == [("gift", "gift_to_oneself")]
    assert api.get("/v1/me/balance").json()["available"] == 100


def test_a_packet_is_created_opened_claimed_and_shows_who_claimed_what(api: Api) -> None:
    """alice drops 100 points in 3 equal shares; bob opens and claims; a second claim by bob
    is the same share; alice's status shows bob's 34 points; carol's double identity is
    refused already_claimed; points.ledger notes go to the outbox (creation, the claim on both
    sides), once."""
    known(api.engine, "alice")
    known(api.engine, "bob", identity="bob-person")
    known(api.engine, "bobby", identity="bob-person")
    api.fund("alice", 500)
    created = api.post("/v1/me/packets", {"total": 100, "shares": 3, "split": "equal",
                                          "message": "恭喜发财"}, "pkt-1")
    assert created.status_code == 201, created.text
    packet = created.json()
    opened = api.get(f"/v1/packets/{packet['code']}", sub="bob").json()
    assert (opened["shares_left"], opened["message"]) == (3, "恭喜发财")
    claim = api.post(f"/v1/packets/{packet['code']}/claim", None, "c-1", sub="bob")
    assert claim.status_code == 200, claim.text
    assert claim.json()["points"] == 34
    assert api.post(f"/v1/packets/{packet['code']}/claim", None, "c-2",
                    sub="bob").json()["share_no"] == 1
    twin = api.post(f"/v1/packets/{packet['code']}/claim", None, "c-3", sub="bobby")
    assert assert_problem(twin, 409, "gift_refused")["detail"].startswith("already_claimed")
    status = api.get(f"/v1/me/packets/{packet['packet_id']}").json()
    assert [(c["claimant_id"], c["points"]) for c in status["claims"]] == [("bob", 34)]
    assert (status["claimed_points"], status["status"]) == (34, "open")
    assert api.get(f"/v1/me/packets/{packet['packet_id']}", sub="bob").status_code == 404
    assert api.get("/v1/me/balance").json()["held"] == 66
    notes = [(r["body"]["customer_id"], r["body"]["kind"], r["body"]["points"])
             for r in api.outbox() if r["topic"] == "points.ledger"
             and "red_packet" in r["body"]]
    assert notes == [("alice", "hold", -100), ("alice", "post", 0), ("bob", "earn", 34)]


def test_a_non_customer_reserves_a_share_without_a_token(api: Api) -> None:
    """POST /public/packets/{code}/reservations keeps a share for an identity hash; a
    reservation for someone who is already a customer is refused already_a_customer."""
    known(api.engine, "alice")
    known(api.engine, "bob", identity="b" * 64)
    api.fund("alice", 100)
    code = api.post("/v1/me/packets", {"total": 10, "shares": 2}, "pkt-r").json()["code"]
    first = api.client.post(f"/public/packets/{code}/reservations",
                            json={"contact_hash": "a" * 64})
    assert first.status_code == 201, first.text
    assert first.json()["code"] == code
    taken = api.client.post(f"/public/packets/{code}/reservations",
                            json={"contact_hash": "b" * 64})
    assert assert_problem(taken, 409, "gift_refused")["detail"].startswith(
        "already_a_customer")
