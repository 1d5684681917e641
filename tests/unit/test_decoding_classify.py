"""Decoding a batch of raw bank.transactions records into accepted events and dead letters."""

from __future__ import annotations

import json

import pytest

from points.dead_letters import RejectedMessage
from points.decoding import RawMessage
from points.decoding import classify as classify_with
from points.events import bank_transaction_adapter
from points.inbox import AcceptedEvent

DECODERS = {"bank.transactions": bank_transaction_adapter}


def classify(messages: list[RawMessage]) -> tuple[list[AcceptedEvent], list[RejectedMessage]]:
    decoded, rejected = classify_with(messages, DECODERS)
    return [d.accepted for d in decoded], rejected


VALID = {
    "event_type": "purchase",
    "event_id": "evt-1",
    "customer_id": "cust-1",
    "amount_minor": 12_50,
    "currency": "CNY",
    "mcc": "5411",
    "merchant_id": "m-1",
    "channel": "card_present",
    "occurred_at": "2026-11-27T09:30:00+08:00",
}


def raw(value: bytes | None, key: bytes | None = b"cust-1", offset: int = 0) -> RawMessage:
    return RawMessage(topic="bank.transactions", partition=0, offset=offset, key=key, value=value)


def test_a_valid_purchase_is_accepted_with_its_kafka_position_and_normalised_payload() -> None:
    """A contract-valid message keyed by its customer id becomes an AcceptedEvent."""
    accepted, rejected = classify([raw(json.dumps(VALID).encode(), offset=7)])
    assert rejected == []
    assert len(accepted) == 1
    event = accepted[0]
    assert (event.event_id, event.customer_id, event.offset) == ("evt-1", "cust-1", 7)
    assert event.payload["amount_minor"] == 1250


@pytest.mark.parametrize(
    ("value", "key", "code", "reason_fragment"),
    [
        (b"", b"cust-1", "empty_value", "no value"),
        (b"{not json", b"cust-1", "invalid_json", "JSON"),
        (
            json.dumps({**VALID, "amount_minor": 12.5}).encode(),
            b"cust-1",
            "contract_violation",
            "amount_minor",
        ),
        (
            json.dumps({**VALID, "amount_minor": -1}).encode(),
            b"cust-1",
            "contract_violation",
            "amount_minor",
        ),
        (
            json.dumps({**VALID, "occurred_at": "2026-11-27T09:30:00"}).encode(),
            b"cust-1",
            "contract_violation",
            "occurred_at",
        ),
        (
            json.dumps({**VALID, "surprise": 1}).encode(),
            b"cust-1",
            "contract_violation",
            "surprise",
        ),
        (
            json.dumps({**VALID, "event_type": "teleport"}).encode(),
            b"cust-1",
            "contract_violation",
            "event_type",
        ),
        (
            json.dumps({k: v for k, v in VALID.items() if k != "currency"}).encode(),
            b"cust-1",
            "contract_violation",
            "currency",
        ),
        (json.dumps(VALID).encode(), b"cust-2", "key_mismatch", "customer_id"),
        (json.dumps(VALID).encode(), None, "key_mismatch", "customer_id"),
    ],
)
def test_bad_messages_are_rejected_with_a_stable_code_and_a_reason_naming_the_field(
    value: bytes, key: bytes | None, code: str, reason_fragment: str
) -> None:
    """Each kind of bad input is dead-lettered with its original bytes and a readable reason."""
    accepted, rejected = classify([raw(value, key=key)])
    assert accepted == []
    assert len(rejected) == 1
    assert rejected[0].reason_code == code
    assert reason_fragment in rejected[0].reason
    assert rejected[0].value == value
    assert rejected[0].key == key


def test_a_message_on_a_topic_without_a_contract_is_rejected() -> None:
    """Only topics with a declared contract are decoded; anything else is dead-lettered."""
    message = RawMessage(topic="surprise.topic", partition=0, offset=0, key=b"k", value=b"{}")
    decoded, rejected = classify_with([message], DECODERS)
    assert decoded == []
    assert rejected[0].reason_code == "unknown_topic"


def test_a_bad_message_does_not_affect_the_good_ones_around_it() -> None:
    """Validation is per message: one poison record never blocks its batch."""
    good_a = json.dumps({**VALID, "event_id": "a"}).encode()
    good_b = json.dumps({**VALID, "event_id": "b"}).encode()
    accepted, rejected = classify(
        [raw(good_a, offset=0), raw(b"\xff\xfe", offset=1), raw(good_b, offset=2)]
    )
    assert [e.event_id for e in accepted] == ["a", "b"]
    assert [r.offset for r in rejected] == [1]
