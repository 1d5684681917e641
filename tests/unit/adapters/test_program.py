"""The partner adapters: the registry, signed requests, and interpretation of partner replies
(every refusal reason that sends a message to the DLQ)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.airline import AirlineProgram
from adapters.contracts import (
    MemberLinkRequested,
    ReferralOffered,
    SwapCancelled,
    SwapRequested,
    name_digest,
    partner_request_adapter,
)
from adapters.eshop import EshopProgram
from adapters.program import ConfiguredPartner
from adapters.registry import build_registry
from adapters.ridehail import RidehailProgram
from adapters.topics import PartnerTopics
from points import swap_saga
from points.errors import InvalidRequest
from points.partners import UnknownPartner
from points.ports import (
    Accepted,
    InboundMessage,
    MemberLinkRequest,
    MemberLinkResult,
    PartnerProgram,
    PartnerPurchaseNotice,
    ReferralOffer,
    ReferralSignupNotice,
    Refused,
)
from points.signing import KeyRing, SigningKey, sign, verify
from tests.unit.adapters.support import CONFIG, make_keys

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
KEYS = make_keys()
TOPICS = PartnerTopics(prefix="t1.")
REGISTRY = build_registry(CONFIG, KEYS, TOPICS)


def program(partner_id: str) -> PartnerProgram:
    return REGISTRY.get(partner_id)


def a_swap(partner_id: str = "ridehail") -> swap_saga.Swap:
    return swap_saga.open_swap(
        swap_id="sw-1", customer_id="c-1", partner_id=partner_id, partner_member_id="m-1",
        points=1000, fee_points=0, partner_units=250, quote_id="q-1", rate_version="v1",
        requested_at=NOW, deadline_at=NOW + timedelta(minutes=2),
    ).swap


def partner_message(
    payload: dict[str, Any],
    *,
    partner_id: str = "ridehail",
    signer: str | None = None,
    key: bytes | None = None,
    signed_at: datetime = NOW,
    topic: str | None = None,
) -> InboundMessage:
    """A reply as the partner would publish it: JSON, keyed by customer, signed."""
    body = {"occurred_at": NOW.isoformat(), "customer_id": "c-1", "partner_id": partner_id}
    body.update(payload)
    value = json.dumps(body).encode()
    signing = KEYS.for_partner(signer or partner_id)[0]
    headers = sign(value, signing, signed_at)
    return InboundMessage(
        topic=topic or TOPICS.events(partner_id),
        key=(key if key is not None else str(body["customer_id"]).encode()),
        value=value,
        headers=headers,
    )


CONFIRMED = {"event_type": "swap_confirmed", "event_id": "rh-c-1", "swap_id": "sw-1",
             "partner_reference": "RH-77", "points": 1000, "partner_points": 250}


# ---------------------------------------------------------------------------------- registry


def test_the_registry_builds_one_adapter_per_configured_partner() -> None:
    """Known partners get their own module's class; each satisfies the PartnerProgram port."""
    assert list(REGISTRY) == ["ridehail", "eshop", "airline"]
    assert isinstance(program("ridehail"), RidehailProgram)
    assert isinstance(program("eshop"), EshopProgram)
    assert isinstance(program("airline"), AirlineProgram)
    assert REGISTRY.events_topics() == [
        "t1.partner.ridehail.events", "t1.partner.eshop.events", "t1.partner.airline.events",
    ]


def test_the_registry_finds_a_program_by_its_events_topic_only() -> None:
    """The topic decides who speaks; a requests topic or a stranger's topic is unknown."""
    assert program("eshop") is REGISTRY.for_events_topic("t1.partner.eshop.events")
    for topic in ("t1.partner.eshop.requests", "partner.eshop.events", "t1.partner.bus.events"):
        with pytest.raises(UnknownPartner):
            REGISTRY.for_events_topic(topic)


def test_a_partner_without_its_signing_key_cannot_be_built() -> None:
    """No key, no adapter: it could neither sign requests nor verify replies."""
    with pytest.raises(LookupError):
        ConfiguredPartner(CONFIG.get("eshop"), KeyRing())


def test_the_adapter_quotes_with_the_partners_configuration() -> None:
    """quote and inbound_quote delegate to points.partners with this partner's figures."""
    assert program("ridehail").quote(1000, NOW).partner_units == 250
    assert program("eshop").inbound_quote(100).points == 400


# ---------------------------------------------------------------------------------- requests


def decode_request(message: Any, partner_id: str) -> Any:
    check = verify(message.value, message.headers, topic=message.topic, keys=KEYS, now=NOW,
                   topic_for=TOPICS.requests)
    assert check.ok, check
    assert message.key == b"c-1"
    return partner_request_adapter.validate_json(message.value)


def test_a_swap_request_is_signed_keyed_and_carries_the_swap() -> None:
    """The partner can verify it and reads swap id, member, points, units and deadline."""
    message = program("ridehail").swap_request(a_swap(), NOW)
    assert message.topic == "t1.partner.ridehail.requests"
    request = decode_request(message, "ridehail")
    assert isinstance(request, SwapRequested)
    assert (request.swap_id, request.partner_member_id, request.points,
            request.partner_points) == ("sw-1", "m-1", 1000, 250)
    assert request.deadline_at == NOW + timedelta(minutes=2)


def test_requests_have_stable_event_ids() -> None:
    """Re-publishing a request (outbox replay) produces the same event id, so the partner can
    deduplicate it."""
    first = decode_request(program("ridehail").swap_request(a_swap(), NOW), "ridehail")
    again = decode_request(
        program("ridehail").swap_request(a_swap(), NOW + timedelta(seconds=5)), "ridehail"
    )
    assert first.event_id == again.event_id


def test_an_adapter_refuses_to_send_another_partners_swap() -> None:
    """A partner adapter acts only for its own partner."""
    with pytest.raises(ValueError):
        program("eshop").swap_request(a_swap("ridehail"), NOW)


def test_a_cancellation_tells_the_partner_the_deadline_passed() -> None:
    """After expiry we ask the partner not to credit (or to reverse a late credit)."""
    request = decode_request(program("ridehail").swap_cancellation(a_swap(), NOW), "ridehail")
    assert isinstance(request, SwapCancelled)
    assert (request.swap_id, request.reason_code) == ("sw-1", "deadline_passed")


def test_member_links_send_a_name_digest_and_the_airline_requires_a_name() -> None:
    """The airline matches names: no name, no request; the name travels only as a digest."""
    link = MemberLinkRequest("link-1", "c-1", "CM-123", member_name="Li Lei")
    with pytest.raises(InvalidRequest):
        program("airline").member_link_request(
            MemberLinkRequest("link-1", "c-1", "CM-123"), NOW
        )
    request = decode_request(program("airline").member_link_request(link, NOW), "airline")
    assert isinstance(request, MemberLinkRequested)
    assert request.member_name_sha256 == name_digest("LI  lei")
    assert b"Li Lei" not in program("airline").member_link_request(link, NOW).value
    ride = decode_request(
        program("ridehail").member_link_request(MemberLinkRequest("l2", "c-1", "R-9"), NOW),
        "ridehail",
    )
    assert ride.member_name_sha256 is None


def test_a_referral_offer_carries_the_code_and_campaign() -> None:
    """Bank-to-partner referral hook: the partner shows our offer with the customer's code."""
    offer = ReferralOffer("off-1", "c-1", "ABCDEFGH2", "spring", NOW + timedelta(days=30))
    request = decode_request(program("eshop").referral_offer(offer, NOW), "eshop")
    assert isinstance(request, ReferralOffered)
    assert (request.referral_code, request.campaign) == ("ABCDEFGH2", "spring")


# ------------------------------------------------------------------------------ interpreting


def accepted(result: Accepted | Refused) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def test_a_signed_confirmation_becomes_a_swap_input() -> None:
    """swap_confirmed -> PartnerConfirmed stamped with our processing time, not theirs."""
    later = NOW + timedelta(seconds=3)
    result = accepted(program("ridehail").interpret(partner_message(CONFIRMED), later))
    assert result.key_id == "ridehail-2026-01"
    assert result.domain == swap_saga.PartnerConfirmed(
        swap_id="sw-1", partner_id="ridehail", event_id="rh-c-1", partner_reference="RH-77",
        points=1000, partner_units=250, at=later,
    )


@pytest.mark.parametrize(
    ("partner_id", "reason_code", "reason", "expected"),
    [
        ("airline", "other", "name_mismatch: passenger name differs", "name_mismatch"),
        ("airline", "other", "system maintenance", "other"),
        ("ridehail", "other", "name_mismatch: ...", "other"),
        ("eshop", "limit_exceeded", "monthly cap", "limit_exceeded"),
    ],
)
def test_rejections_map_to_customer_facing_reason_codes(
    partner_id: str, reason_code: str, reason: str, expected: str
) -> None:
    """The airline's free-text name mismatch becomes name_mismatch; others pass through."""
    payload = {"event_type": "swap_rejected", "event_id": "rej-1", "swap_id": "sw-1",
               "reason_code": reason_code, "reason": reason}
    result = accepted(program(partner_id).interpret(
        partner_message(payload, partner_id=partner_id), NOW
    ))
    assert isinstance(result.domain, swap_saga.PartnerRejected)
    assert result.domain.reason_code == expected


def test_inbound_swaps_become_idempotent_credits_at_the_inbound_rate() -> None:
    """eshop beans in: 4 points per bean, keyed by the partner's reference."""
    payload = {"event_type": "inbound_swap", "event_id": "in-1", "swap_id": "isw-1",
               "partner_reference": "ORD-5", "partner_points": 150}
    result = accepted(program("eshop").interpret(partner_message(payload, partner_id="eshop"),
                                                 NOW))
    assert result.domain == swap_saga.InboundCredit(
        idempotency_key="inbound:eshop:ORD-5", customer_id="c-1", partner_id="eshop",
        partner_reference="ORD-5", partner_units=150, points=600,
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"event_type": "member_linked", "event_id": "l-1", "partner_member_id": "R-9",
          "link_request_id": "link-1"},
         MemberLinkResult("c-1", "ridehail", "R-9", True, "link-1")),
        ({"event_type": "member_link_rejected", "event_id": "l-2", "partner_member_id": "R-9",
          "link_request_id": "link-1", "reason_code": "member_not_found", "reason": "none"},
         MemberLinkResult("c-1", "ridehail", "R-9", False, "link-1", "member_not_found", "none")),
        ({"event_type": "referral_signup", "event_id": "rs-1", "referral_code": "ABCDEFGH2",
          "partner_member_id": "R-9"},
         ReferralSignupNotice("c-1", "ridehail", "R-9", "ABCDEFGH2", "rs-1")),
        ({"event_type": "partner_purchase", "event_id": "pp-1", "partner_reference": "T-1",
          "amount_minor": 23_50, "currency": "CNY"},
         PartnerPurchaseNotice("pp-1", "c-1", "ridehail", 23_50, "CNY", NOW)),
    ],
)
def test_links_referral_signups_and_purchases_are_interpreted(payload: dict[str, Any],
                                                               expected: object) -> None:
    """Member links (accepted or refused), partner-originated referral sign-ups and partner
    purchases each become their domain notice."""
    assert accepted(program("ridehail").interpret(partner_message(payload), NOW)).domain == (
        expected
    )


def test_inbound_swaps_into_the_airline_are_refused() -> None:
    """The airline does not offer miles -> points: the message is refused, not credited."""
    payload = {"event_type": "inbound_swap", "event_id": "in-1", "swap_id": "isw-1",
               "partner_reference": "A-5", "partner_points": 1000}
    result = program("airline").interpret(partner_message(payload, partner_id="airline"), NOW)
    assert isinstance(result, Refused)
    assert (result.reason_code, result.stage) == ("inbound_not_offered", "semantics")


def with_headers(message: InboundMessage, headers: tuple[tuple[str, bytes], ...]) -> (
    InboundMessage
):
    return InboundMessage(message.topic, message.key, message.value, headers)


@pytest.mark.parametrize(
    ("case", "code", "stage"),
    [
        ("unsigned", "unsigned", "signature"),
        ("tampered", "bad_signature", "signature"),
        ("stale", "stale", "signature"),
        ("unknown_key", "unknown_key", "signature"),
        ("another_partners_key", "wrong_topic", "signature"),
        ("payload_names_another_partner", "partner_id_mismatch", "contract"),
        ("key_is_not_the_customer", "key_mismatch", "contract"),
        ("not_json", "invalid_json", "decode"),
        ("contract_violation", "contract_violation", "contract"),
        ("empty", "empty_value", "decode"),
    ],
)
def test_every_unacceptable_message_is_refused_with_a_dlq_reason(
    case: str, code: str, stage: str
) -> None:
    """Signature first (unsigned, tampered, stale, unknown key, another partner's key on this
    topic), then the contract (payload partner, message key, JSON, fields)."""
    good = partner_message(CONFIRMED)
    message = good
    if case == "unsigned":
        message = with_headers(good, ())
    elif case == "tampered":
        assert good.value is not None
        message = InboundMessage(good.topic, good.key, good.value.replace(b"1000", b"9000"),
                                 good.headers)
    elif case == "stale":
        message = partner_message(CONFIRMED, signed_at=NOW - timedelta(minutes=6))
    elif case == "unknown_key":
        assert good.value is not None
        stranger = SigningKey("who-1", "ridehail", b"z" * 32)
        message = with_headers(good, sign(good.value, stranger, NOW))
    elif case == "another_partners_key":
        message = partner_message(CONFIRMED, signer="eshop")
    elif case == "payload_names_another_partner":
        message = partner_message({**CONFIRMED, "partner_id": "eshop"})
    elif case == "key_is_not_the_customer":
        message = partner_message(CONFIRMED, key=b"c-2")
    elif case in ("not_json", "contract_violation", "empty"):
        value = {"not_json": b"{nope", "empty": b""}.get(case)
        if value is None:
            value = json.dumps({**CONFIRMED, "points": 10.5}).encode()
        message = InboundMessage(good.topic, good.key, value, sign(value, KEYS.for_partner(
            "ridehail")[0], NOW))
    result = program("ridehail").interpret(message, NOW)
    assert isinstance(result, Refused), result
    assert (result.reason_code, result.stage) == (code, stage)
    assert result.detail
