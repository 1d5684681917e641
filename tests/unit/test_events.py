"""Wire contracts: every topic's messages decode from bytes, and bad ones are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from points.events import (
    PartnerIdMismatch,
    Purchase,
    any_event_adapter,
    bank_customer_adapter,
    bank_transaction_adapter,
    check_partner_topic,
    customer_activity_adapter,
    message_key,
    partner_event_adapter,
)

WHEN = "2026-11-27T09:30:00+08:00"
COMMON = {"event_id": "evt-1", "customer_id": "cust-1", "occurred_at": WHEN}
TXN = {
    **COMMON,
    "amount_minor": 1250,
    "currency": "CNY",
    "mcc": "5411",
    "merchant_id": "m-1",
    "channel": "card_present",
}

SAMPLES: list[tuple[TypeAdapter[Any], dict[str, Any]]] = [
    (bank_transaction_adapter, {**TXN, "event_type": "purchase"}),
    (bank_transaction_adapter, {**TXN, "event_type": "purchase", "partner_id": "ridehail"}),
    (
        bank_transaction_adapter,
        {**TXN, "event_type": "refund", "event_id": "evt-2", "original_event_id": "evt-1"},
    ),
    (
        bank_transaction_adapter,
        {**TXN, "event_type": "reversal", "event_id": "evt-3", "original_event_id": "evt-1"},
    ),
    (
        bank_customer_adapter,
        {
            **COMMON,
            "event_type": "customer_profile",
            "segment": "long_tail",
            "joined_at": WHEN,
            "birth_year": 2001,
            "status": "active",
        },
    ),
    (
        bank_customer_adapter,
        {
            **COMMON,
            "event_type": "customer_onboarded",
            "segment": "mass",
            "joined_at": WHEN,
            "referral_code": "ABCD1234",
        },
    ),
    (customer_activity_adapter, {**COMMON, "event_type": "check_in"}),
    (
        customer_activity_adapter,
        {**COMMON, "event_type": "share", "network": "wechat", "content_id": "offer-7"},
    ),
    (
        customer_activity_adapter,
        {**COMMON, "event_type": "challenge_opt_in", "challenge_id": "explorer-monthly"},
    ),
    (
        partner_event_adapter,
        {
            **COMMON,
            "event_type": "partner_purchase",
            "partner_id": "eshop",
            "partner_reference": "order-9",
            "amount_minor": 9900,
            "currency": "CNY",
        },
    ),
    (
        partner_event_adapter,
        {
            **COMMON,
            "event_type": "member_linked",
            "partner_id": "eshop",
            "partner_member_id": "mem-1",
        },
    ),
    (
        partner_event_adapter,
        {
            **COMMON,
            "event_type": "swap_confirmed",
            "partner_id": "airline",
            "swap_id": "swap-1",
            "partner_reference": "air-77",
            "points": 1000,
            "partner_points": 250,
        },
    ),
    (
        partner_event_adapter,
        {
            **COMMON,
            "event_type": "swap_rejected",
            "partner_id": "airline",
            "swap_id": "swap-1",
            "reason_code": "limit_exceeded",
            "reason": "monthly limit reached",
        },
    ),
    (
        partner_event_adapter,
        {
            **COMMON,
            "event_type": "inbound_swap",
            "partner_id": "airline",
            "swap_id": "in-1",
            "partner_reference": "air-78",
            "partner_points": 500,
        },
    ),
    (
        partner_event_adapter,
        {
            **COMMON,
            "event_type": "referral_signup",
            "partner_id": "ridehail",
            "referral_code": "RIDE2026",
            "partner_member_id": "rider-5",
        },
    ),
]


@pytest.mark.parametrize(("adapter", "message"), SAMPLES)
def test_each_topic_adapter_decodes_its_messages_from_bytes(
    adapter: TypeAdapter[Any], message: dict[str, Any]
) -> None:
    """Valid JSON bytes decode to the frozen model named by event_type, keyed by customer_id."""
    event = adapter.validate_json(json.dumps(message).encode())
    assert event.event_type == message["event_type"]
    assert event.schema_version == 1
    assert message_key(event) == b"cust-1"
    assert any_event_adapter.validate_json(json.dumps(message)) == event
    assert adapter.validate_json(adapter.dump_json(event)) == event  # lossless round trip
    with pytest.raises(ValidationError):
        setattr(event, "customer_id", "someone-else")  # noqa: B010


@pytest.mark.parametrize(
    ("adapter", "message", "field"),
    [
        (
            bank_transaction_adapter,
            {**TXN, "event_type": "purchase", "amount_minor": 12.5},
            "amount_minor",
        ),
        (
            bank_transaction_adapter,
            {**TXN, "event_type": "purchase", "amount_minor": "1250"},
            "amount_minor",
        ),
        (
            bank_transaction_adapter,
            {**TXN, "event_type": "purchase", "amount_minor": 0},
            "amount_minor",
        ),
        (
            bank_transaction_adapter,
            {**TXN, "event_type": "purchase", "occurred_at": "2026-11-27T09:30:00"},
            "occurred_at",
        ),
        (
            bank_transaction_adapter,
            {**TXN, "event_type": "purchase", "schema_version": 2},
            "schema_version",
        ),
        (bank_transaction_adapter, {**TXN, "event_type": "purchase", "extra": 1}, "extra"),
        (bank_transaction_adapter, {**TXN, "event_type": "refund"}, "original_event_id"),
        (
            bank_transaction_adapter,
            {**TXN, "event_type": "refund", "original_event_id": "evt-1"},
            "different event",
        ),
        (
            bank_transaction_adapter,
            {**TXN, "event_type": "purchase", "currency": "cny"},
            "currency",
        ),
        (
            bank_customer_adapter,
            {
                **COMMON,
                "event_type": "customer_profile",
                "segment": "mass",
                "joined_at": WHEN,
                "status": "sleeping",
            },
            "status",
        ),
        (
            bank_customer_adapter,
            {
                **COMMON,
                "event_type": "customer_onboarded",
                "segment": "mass",
                "joined_at": WHEN,
                "referral_code": "bad code",
            },
            "referral_code",
        ),
        (
            customer_activity_adapter,
            {**COMMON, "event_type": "share", "network": "myspace", "content_id": "x"},
            "network",
        ),
        (customer_activity_adapter, {**COMMON, "event_type": "purchase"}, "event_type"),
        (
            partner_event_adapter,
            {
                **COMMON,
                "event_type": "swap_confirmed",
                "partner_id": "eshop",
                "swap_id": "s",
                "partner_reference": "r",
                "points": -5,
                "partner_points": 1,
            },
            "points",
        ),
        (
            partner_event_adapter,
            {
                **COMMON,
                "event_type": "swap_rejected",
                "partner_id": "eshop",
                "swap_id": "s",
                "reason_code": "why-not",
                "reason": "x",
            },
            "reason_code",
        ),
    ],
)
def test_bad_messages_are_refused_with_the_field_named(
    adapter: TypeAdapter[Any], message: dict[str, Any], field: str
) -> None:
    """Floats, strings for money, naive times, unknown fields and versions are all refused."""
    with pytest.raises(ValidationError) as caught:
        adapter.validate_json(json.dumps(message))
    assert field in str(caught.value)


def test_event_types_are_unique_across_topics() -> None:
    """No two topics share an event_type, so a mixed recording decodes unambiguously."""
    seen = [message["event_type"] for _, message in SAMPLES]
    assert len(set(seen)) == 14


def test_a_partner_can_only_publish_on_its_own_topic() -> None:
    """A partner event naming partner eshop is refused on the airline partner's topic."""
    _, message = SAMPLES[10]
    event = partner_event_adapter.validate_python(message)
    check_partner_topic(event, "partner.eshop.events")
    with pytest.raises(PartnerIdMismatch, match=r"partner\.airline\.events"):
        check_partner_topic(event, "partner.airline.events")


def test_v1_purchase_fields_are_unchanged_for_the_stream_worker() -> None:
    """The fields the ingest path relies on keep their names and integer types."""
    assert set(Purchase.model_fields) == {
        "schema_version",
        "event_id",
        "customer_id",
        "amount_minor",
        "currency",
        "mcc",
        "merchant_id",
        "channel",
        "occurred_at",
        "event_type",
        "partner_id",
    }
