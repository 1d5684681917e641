"""Journey: a red packet spreads through a group chat and brings new customers (issue 14).

alice (a customer for over a year) gets 5,000 points from an operator adjustment
(`points-ledger adjust`), then drops a 10-share random packet of 1,000 points from the app
(`POST /v1/me/packets`, expiring in 60 s for the journey). Seven customers claim in the app
(`POST /v1/packets/{code}/claim`); two friends who are not customers open accounts with the
packet's code (core banking's `customer_onboarded` on `bank.customers`) and get a share each;
the tenth share is not claimed, and after the expiry the gifts timer (`points-ledger packets
sweep`) returns it to alice. The shares sum to the total, the two friends are referrals of
alice at generation 1 (operations: `points-ledger packets show`), and a friend of theirs
brought by their own packet is generation 2. Everything through the API, the topics and the
CLI; each claim is announced on `points.ledger`; `points-ledger verify` is clean at the end.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Any

import pytest

from tests.journeys import messages
from tests.journeys.harness import Journey, wait_until

pytestmark = pytest.mark.integration

GIFT_ENV = {"POINTS_GIFTS__MIN_ACCOUNT_AGE_DAYS": "0"}


def identity(name: str) -> str:
    return hashlib.sha256(f"journey-packets:{name}".encode()).hexdigest()


def onboard(journey: Journey, customer_id: str, *, code: str | None = None,
            days_ago: float = 0.01, person: str | None = None) -> None:
    """Core banking onboards ``customer_id`` (the identity of ``person``, by default their
    own), with ``code`` as their referral code when given."""
    body: dict[str, Any] = messages.onboarding(customer_id, days_ago=days_ago,
                                               identity_hash=identity(person or customer_id))
    if code is not None:
        body["referral_code"] = code
    publish(journey, body)


def publish(journey: Journey, *bodies: dict[str, Any]) -> None:
    """Core banking publishes on bank.customers / bank.transactions, then waits until the
    partner worker (which decides onboardings and referrals) committed past them."""
    topics = journey.topics
    with journey.bank_producer() as bank:
        for body in bodies:
            purchase = body["event_type"] in ("purchase", "refund", "reversal")
            bank.send(topics.bank_transactions if purchase else topics.bank_customers, body)
    journey.wait_caught_up(journey.partner_worker_group,
                           [topics.bank_customers, topics.bank_transactions])


def post(journey: Journey, customer_id: str, path: str, body: Any, key: str) -> Any:
    with journey.customer(customer_id) as app:
        response = app.post(path, json=body, headers={"Idempotency-Key": key})
    assert response.status_code in (200, 201), response.text
    return response.json()


def get(journey: Journey, customer_id: str, path: str) -> Any:
    with journey.customer(customer_id) as app:
        response = app.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_random_packet_brings_two_new_customers_and_a_second_generation(
        journey: Journey) -> None:
    """7 app claims + 2 onboardings with the code + 1 share expired back to the sender; the
    shares sum to 1,000; the two new customers are generation 1, their friend generation 2."""
    journey.start_worker()
    journey.start_partner_worker()
    journey.start_api(**GIFT_ENV)
    onboard(journey, "alice", days_ago=400)
    adjusted = journey.cli("adjust", "alice", "5000", "--reason", "packet journey float",
                           "--operator", "ops-ann")
    assert adjusted.exit_code == 0, adjusted

    packet = post(journey, "alice", "/v1/me/packets",
                  {"total": 1000, "shares": 10, "split": "random", "message": "新年快乐",
                   "expires_in_s": 60}, "cny-packet")
    code, packet_id = packet["code"], packet["packet_id"]
    assert get(journey, "alice", "/v1/me/balance")["held"] == 1000

    friends = [f"friend-{n}" for n in range(7)]
    shares: dict[str, int] = {}
    for friend in friends:
        opened = get(journey, friend, f"/v1/packets/{code}")
        assert opened["status"] == "open"
        shares[friend] = post(journey, friend, f"/v1/packets/{code}/claim", None,
                              f"claim-{friend}")["points"]
    for newcomer in ("nina", "omar"):
        onboard(journey, newcomer, code=code)
        (claim,) = get(journey, newcomer, "/v1/me/packet-claims")["items"]
        shares[newcomer] = claim["points"]
    assert all(points >= 1 for points in shares.values())
    for who, points in shares.items():
        assert get(journey, who, "/v1/me/balance")["available"] == points

    # The tenth share is never claimed: after the expiry the gifts timer returns it.
    expires_at = datetime.fromisoformat(packet["expires_at"])
    time.sleep(max(0.0, (expires_at - datetime.now(expires_at.tzinfo)).total_seconds()) + 1)
    swept = journey.cli_json("packets", "sweep")
    assert swept["packets_expired"] == 1
    status = get(journey, "alice", f"/v1/me/packets/{packet_id}")
    assert status["status"] == "expired"
    assert [c["claimant_id"] for c in status["claims"]] == [*friends, "nina", "omar"]
    claimed = sum(c["points"] for c in status["claims"])
    assert claimed == sum(shares.values()) == status["claimed_points"]
    assert claimed < 1000  # one share, at least one point, went back
    balance = get(journey, "alice", "/v1/me/balance")
    assert (balance["available"], balance["held"]) == (5000 - claimed, 0)

    # nina's own packet brings pia: generation 2.
    own = post(journey, "nina", "/v1/me/packets",
               {"total": 1, "shares": 1, "split": "equal", "message": "join us"}, "nina-1")
    onboard(journey, "pia", code=own["code"])
    assert get(journey, "pia", "/v1/me/balance")["available"] == 1

    shown = journey.cli_json("packets", "show", packet_id)
    assert sorted((b["referee_id"], b["referrer_id"], b["generation"])
                  for b in shown["brought"]) == [("nina", "alice", 1), ("omar", "alice", 1)]
    second = journey.cli_json("packets", "show", own["packet_id"])
    assert [(b["referee_id"], b["referrer_id"], b["generation"])
            for b in second["brought"]] == [("pia", "nina", 2)]
    listed = journey.cli_json("referrals", "list", "--customer", "alice")["referrals"]
    assert sorted((r["referee_id"], r["state"]) for r in listed) == [
        ("nina", "signed_up"), ("omar", "signed_up")]
    # Every claim is announced on points.ledger, to the claimant and to the sender.
    def claim_note(record: Any) -> bool:
        body = record.json()
        return bool(body.get("red_packet", {}).get("packet_id") == packet_id
                    and body["red_packet"]["role"] == "claimant")

    notes = journey.read_topic(journey.topics.points_ledger, at_least=9, match=claim_note)
    assert sorted((r.json()["customer_id"], r.json()["points"]) for r in notes) == sorted(
        shares.items())
    wait_until(lambda: journey.cli_json("verify")["ok"] is True, timeout_s=30,
               what="verify clean")
    journey.check_alive()


def referral_view(journey: Journey, customer_id: str) -> dict[str, Any]:
    body: dict[str, Any] = get(journey, customer_id, "/v1/me/referral")
    return body


def test_a_newcomer_a_packet_brought_earns_its_sender_the_referral_reward_frauds_do_not(
        journey: Journey) -> None:
    """bob, new to the bank, opens his account with alice's packet code and gets a share; his
    first qualifying purchase (58 CNY on bank.transactions) rewards alice by the referral rules
    (500 + 200 first-referral bonus) and bob (500), as a referral code would. The same packet
    code pays no reward for dora, an existing customer onboarded again with it (she still gets
    her share: anyone may claim a packet), nor for alice-2, a second account of alice (same
    identity hash), who gets no share either (her own packet). Customer (API) and operations
    (CLI) see each outcome with its reason; only bob is counted as brought by the packet."""
    journey.start_worker()
    journey.start_partner_worker()
    journey.start_api(**GIFT_ENV)
    onboard(journey, "alice", days_ago=400)
    assert journey.cli("adjust", "alice", "5000", "--reason", "packet journey float",
                       "--operator", "ops-ann").exit_code == 0
    packet = post(journey, "alice", "/v1/me/packets",
                  {"total": 300, "shares": 3, "split": "equal", "message": "come bank with us"},
                  "referral-packet")
    code, packet_id = packet["code"], packet["packet_id"]

    # bob is new: a share and a referral of alice, signed up.
    onboard(journey, "bob", code=code)
    (bob_claim,) = get(journey, "bob", "/v1/me/packet-claims")["items"]
    assert bob_claim["points"] == 100
    assert referral_view(journey, "alice")["referred"] == [{"status": "signed_up", "count": 1}]
    own = referral_view(journey, "bob")["own_referral"]
    assert (own["state"], own["reason_code"]) == ("signed_up", None)
    publish(journey, messages.bank_transaction("purchase", "bob-first", "bob", 5_800, 0.01))
    alice = referral_view(journey, "alice")
    (rewarded,) = alice["referrals"]
    assert (rewarded["state"], rewarded["points"]) == ("rewarded", 700)
    assert referral_view(journey, "bob")["own_referral"]["points"] == 500
    assert get(journey, "alice", "/v1/me/balance")["available"] == 5000 - 300 + 700

    # dora banks with us since 2025 and shops; alice-2 is alice's second account.
    publish(journey,
            messages.profile("dora", joined_days_ago=300, identity_hash=identity("dora")),
            messages.bank_transaction("purchase", "dora-before", "dora", 2_000, 0.02))
    dora_before = get(journey, "dora", "/v1/me/balance")["available"]
    onboard(journey, "dora", code=code)
    onboard(journey, "alice-2", code=code, person="alice")
    publish(journey, *(messages.bank_transaction("purchase", f"{who}-first", who, 5_000, 0.01)
                       for who in ("dora", "alice-2")))

    (dora_claim,) = get(journey, "dora", "/v1/me/packet-claims")["items"]
    assert dora_claim["points"] == 100
    assert get(journey, "alice-2", "/v1/me/packet-claims")["items"] == []
    refused = {r["reason_code"] for r in get(journey, "alice-2", "/v1/me/refusals")["items"]}
    assert "own_packet" in refused, refused
    for who, reason in (("dora", "already_a_customer"), ("alice-2", "self_referral_identity")):
        own = referral_view(journey, who)["own_referral"]
        assert (own["state"], own["reason_code"], own["points"]) == ("refused", reason, 0), own
        assert own["reason"]
    alice = referral_view(journey, "alice")
    assert sorted((r["state"], r["reason_code"]) for r in alice["referrals"]) == [
        ("refused", "already_a_customer"), ("refused", "self_referral_identity"),
        ("rewarded", None)]
    assert alice["rewarded_count"] == 1
    balance = get(journey, "alice", "/v1/me/balance")
    assert (balance["available"], balance["held"]) == (5000 - 300 + 700, 100)  # nothing more
    dora_after = get(journey, "dora", "/v1/me/balance")["available"]
    assert dora_after > dora_before + 100  # her share and her purchase's points, no bonus
    assert referral_view(journey, "dora")["own_referral"]["points"] == 0

    # Operations: the referrals with their reasons; the packet brought bob only.
    listed = journey.cli_json("referrals", "list", "--customer", "alice")["referrals"]
    assert {r["referee_id"]: (r["state"], r["reason_code"]) for r in listed} == {
        "bob": ("rewarded", None), "dora": ("refused", "already_a_customer"),
        "alice-2": ("refused", "self_referral_identity")}
    shown = journey.cli_json("packets", "show", packet_id)
    assert [(b["referee_id"], b["generation"]) for b in shown["brought"]] == [("bob", 1)]
    assert (shown["status"], shown["claimed_count"]) == ("open", 2)
    wait_until(lambda: journey.cli_json("verify")["ok"] is True, timeout_s=30,
               what="verify clean")
    journey.check_alive()
