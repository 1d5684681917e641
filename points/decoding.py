"""Decode a batch of raw Kafka messages into validated events and dead letters. Pure.

Each topic has one decoder (a pydantic TypeAdapter for its contract). A message is rejected
when its value is empty, not JSON, fails the contract, or its key is not the customer id it
carries: keys decide the partition, and so the per-customer order every rule relies on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from points.dead_letters import RejectedMessage
from points.inbox import AcceptedEvent

__all__ = ["Decoded", "Decoder", "RawMessage", "classify", "rejection"]

REASON_MAX_CHARS = 2000


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One consumed Kafka record, exactly as it arrived."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Decoder(Protocol):
    def validate_json(self, data: bytes, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Decoded:
    """A valid message: its inbox row and the typed event."""

    accepted: AcceptedEvent
    event: BaseModel


def describe(error: ValidationError) -> str:
    """A one-line, field-named reason: 'amount_minor: Input should be greater than 0; ...'."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)[:REASON_MAX_CHARS]


def rejection(msg: RawMessage, code: str, reason: str) -> RejectedMessage:
    return RejectedMessage(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        reason_code=code,
        reason=reason[:REASON_MAX_CHARS],
        key=msg.key,
        value=msg.value,
    )


def classify(
    messages: Sequence[RawMessage], decoders: Mapping[str, Decoder]
) -> tuple[list[Decoded], list[RejectedMessage]]:
    """Validate each message against its topic's contract; keep the input order."""
    decoded: list[Decoded] = []
    rejected: list[RejectedMessage] = []
    for msg in messages:
        decoder = decoders.get(msg.topic)
        if decoder is None:
            rejected.append(rejection(msg, "unknown_topic", f"no contract for topic {msg.topic}"))
            continue
        if not msg.value:
            rejected.append(rejection(msg, "empty_value", "message has no value"))
            continue
        try:
            event = decoder.validate_json(msg.value)
        except ValidationError as exc:
            code = "invalid_json" if _is_json_error(exc) else "contract_violation"
            rejected.append(rejection(msg, code, describe(exc)))
            continue
        if msg.key is None or msg.key.decode("utf-8", "replace") != event.customer_id:
            reason = f"message key {msg.key!r} must equal customer_id {event.customer_id!r}"
            rejected.append(rejection(msg, "key_mismatch", reason))
            continue
        accepted = AcceptedEvent(
            event_id=event.event_id,
            topic=msg.topic,
            event_type=event.event_type,
            customer_id=event.customer_id,
            partition=msg.partition,
            offset=msg.offset,
            raw=msg.value,
        )
        decoded.append(Decoded(accepted, event))
    return decoded, rejected


def _is_json_error(error: ValidationError) -> bool:
    return any(item["type"] == "json_invalid" for item in error.errors(include_url=False))
