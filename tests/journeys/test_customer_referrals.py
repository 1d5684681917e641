"""Journey: customers bringing customers, as the bank's app, core banking and operations live it.

The referrer opens the app and gets their code (``GET /v1/me/referral``, docs/api.md); core
banking onboards a friend on ``bank.customers`` with that code and the friend's identity hash
computed by docs/partners.md §6's recipe, then the friend's first purchase arrives on
``bank.transactions`` (confluent-kafka, as core banking publishes). The referrer sees the
referral rewarded in the app; operations see it with ``points-ledger referrals list --json``.
Three frauds go the same way and are refused, each with its reason visible to the customer
(API) and to operations (CLI): a ring A -> B -> C -> A, an existing customer onboarded again
with a code, and a second account of the referrer (same identity hash). A mistyped code is
refused as invalid, visible to the customer who typed it. (Findings 4 and 5 of issue 12: the
code shown was never stored, onboarding with it changed nothing, and every fraud was paid.)
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import pytest

from tests.journeys import messages
from tests.journeys.harness import Journey

pytestmark = pytest.mark.integration

# Core banking's identity key: it never leaves the bank; we only ever see the hashes.
IDENTITY_KEY = b"core-banking-identity-key-for-this-journey"
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # docs/partners.md §6


def identity_hash(document: str) -> str:
    """docs/partners.md §6: lowercase hex HMAC-SHA256(identity key, "<type>:<number>")."""
    return hmac.new(IDENTITY_KEY, document.encode(), hashlib.sha256).hexdigest()


def onboarding(customer_id: str, *, code: str | None, document: str,
               joined_days_ago: float = 0) -> dict[str, Any]:  # fmt: skip
    body = messages.onboarding(customer_id, days_ago=joined_days_ago,
                               identity_hash=identity_hash(document))  # fmt: skip
    if code is not None:
        body["referral_code"] = code
    return body


def profile(customer_id: str, joined_at: str, document: str) -> dict[str, Any]:
    return messages.profile(customer_id, days_ago=0.5, joined_at=joined_at,
                            identity_hash=identity_hash(document))  # fmt: skip


def purchase(event_id: str, customer_id: str, amount_minor: int) -> dict[str, Any]:
    return messages.bank_transaction("purchase", event_id, customer_id, amount_minor, 0.01)


def referral_view(journey: Journey, customer_id: str) -> dict[str, Any]:
    """What the customer's app shows: GET /v1/me/referral with their token."""
    with journey.customer(customer_id) as app:
        response = app.get("/v1/me/referral")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def code_of(journey: Journey, customer_id: str) -> str:
    code: str = referral_view(journey, customer_id)["code"]
    assert len(code) == 9 and set(code) <= set(CODE_ALPHABET)
    return code


def publish(journey: Journey, topic: str, *messages: dict[str, Any]) -> None:
    """Core banking publishes (lz4, idempotent), then waits until the partner worker, which
    decides referrals, committed past them (so every message has its outcome)."""
    with journey.bank_producer(compression="lz4") as bank:
        for message in messages:
            bank.send(topic, message)
    journey.wait_caught_up(journey.partner_worker_group,
                           [journey.topics.bank_customers, journey.topics.bank_transactions])


def mistyped(code: str) -> str:
    """The code with one character changed, as a customer might type it."""
    other = next(ch for ch in CODE_ALPHABET if ch != code[3])
    return code[:3] + other + code[4:]


def test_a_friend_brought_with_the_code_the_app_shows_is_rewarded_and_frauds_are_refused(
    journey: Journey,
) -> None:
    """Happy path end to end through the documented interfaces, then the three frauds and a
    mistyped code, each refused with its reason code and words in the app and in the CLI."""
    journey.start_worker()
    journey.start_partner_worker()
    journey.start_api()
    customers, transactions = journey.topics.bank_customers, journey.topics.bank_transactions

    # alice has banked with us for over a year; her app shows her code, the same every time.
    publish(journey, customers,
            onboarding("alice", code=None, document="CN-RIC:110105194912310021",
                       joined_days_ago=400))
    code = code_of(journey, "alice")
    assert code_of(journey, "alice") == code

    # bob, a new customer, opens his account with alice's code, then buys for 58 CNY.
    publish(journey, customers, onboarding("bob", code=code, document="CN-RIC:31010419800101001X"))
    assert referral_view(journey, "alice")["referred"] == [{"status": "signed_up", "count": 1}]
    bob = referral_view(journey, "bob")["own_referral"]
    assert (bob["state"], bob["reason_code"]) == ("signed_up", None)
    publish(journey, transactions, purchase("bob-first", "bob", 5_800))

    alice = referral_view(journey, "alice")
    (rewarded,) = alice["referrals"]
    assert (rewarded["state"], rewarded["points"]) == ("rewarded", 700)  # 500 + first bonus 200
    assert alice["rewarded_count"] == 1
    with journey.customer("alice") as app:
        assert app.get("/v1/me/balance").json()["available"] == 700
    assert referral_view(journey, "bob")["own_referral"]["points"] == 500

    # Fraud 1: a second account of alice (her identity hash) with her own code.
    # Fraud 2: dora, a customer since 2025 who shops with us, onboarded again with the code.
    # And eve mistypes the code.
    publish(journey, customers, profile("dora", "2025-06-01T00:00:00+08:00",
                                        "CN-RIC:440104199001011234"))
    publish(journey, transactions, purchase("dora-before", "dora", 2_000))
    publish(journey, customers,
            onboarding("alice-2", code=code, document="CN-RIC:110105194912310021"),
            onboarding("dora", code=code, document="CN-RIC:440104199001011234"),
            onboarding("eve", code=mistyped(code), document="CN-RIC:440104199202022222"))

    # Fraud 3: a ring. ring-a refers ring-b, ring-b refers ring-c, then ring-a opens an
    # account with ring-c's code.
    ring_codes = {c: code_of(journey, c) for c in ("ring-a", "ring-b", "ring-c")}
    publish(journey, customers,
            onboarding("ring-b", code=ring_codes["ring-a"], document="CN-RIC:ring-b"),
            onboarding("ring-c", code=ring_codes["ring-b"], document="CN-RIC:ring-c"))
    publish(journey, customers,
            onboarding("ring-a", code=ring_codes["ring-c"], document="CN-RIC:ring-a"))

    # Their first purchases pay no referrer.
    publish(journey, transactions, *(purchase(f"{c}-first", c, 5_000)
                                     for c in ("alice-2", "dora", "ring-a")))

    # The customer sees each refusal, with a reason in words (and no other customer's data).
    alice = referral_view(journey, "alice")
    states = sorted((r["state"], r["reason_code"]) for r in alice["referrals"])
    assert states == [("refused", "already_a_customer"), ("refused", "self_referral_identity"),
                      ("rewarded", None)]
    for item in alice["referrals"]:
        assert item["state"] == "rewarded" or (item["reason"] and "alice" not in item["reason"])
    assert alice["rewarded_count"] == 1
    with journey.customer("alice") as app:
        assert app.get("/v1/me/balance").json()["available"] == 700  # nothing more
    for customer, reason in (("alice-2", "self_referral_identity"),
                             ("dora", "already_a_customer"), ("eve", "invalid_code"),
                             ("ring-a", "referral_ring")):
        own = referral_view(journey, customer)["own_referral"]
        assert (own["state"], own["reason_code"]) == ("refused", reason), (customer, own)
        assert own["reason"] and own["points"] == 0
    (ring,) = referral_view(journey, "ring-c")["referrals"]
    assert (ring["state"], ring["reason_code"]) == ("refused", "referral_ring")
    assert "already referred" in ring["reason"]

    # Operations see the same outcomes, with the evidence.
    listed = journey.cli_json("referrals", "list")["referrals"]
    outcomes = {r["referee_id"]: (r["state"], r["reason_code"]) for r in listed}
    assert outcomes == {
        "bob": ("rewarded", None), "alice-2": ("refused", "self_referral_identity"),
        "dora": ("refused", "already_a_customer"), "eve": ("refused", "invalid_code"),
        "ring-b": ("signed_up", None), "ring-c": ("signed_up", None),
        "ring-a": ("refused", "referral_ring"),
    }
    (ring_row,) = journey.cli_json("referrals", "list", "--reason", "referral_ring")["referrals"]
    assert "ring-c <- ring-b <- ring-a" in ring_row["reason"]
    shown = journey.cli_json("referrals", "show", ring_row["referral_id"])
    assert shown["refusal"]["reason_code"] == "referral_ring"
    assert shown["refusal"]["event_id"] == "onb-ring-a"
    mine = journey.cli_json("referrals", "list", "--customer", "alice", "--state", "refused")
    assert sorted(r["referee_id"] for r in mine["referrals"]) == ["alice-2", "dora"]
    journey.check_alive()


def test_the_api_refuses_to_start_with_a_referral_secret_that_is_not_hex(
    journey: Journey,
) -> None:
    """POINTS_REFERRAL_SECRET is hex for the API as for the partner worker (docs/api.md):
    a raw string stops the API at start-up with a message naming the variable."""
    with pytest.raises(AssertionError, match="POINTS_REFERRAL_SECRET must be hex"):
        journey.start_api(POINTS_REFERRAL_SECRET="a-raw-referral-secret",
                          POINTS_API__REFERRAL_SECRET="a-raw-referral-secret")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{journey.api_url}/health", timeout=2)
