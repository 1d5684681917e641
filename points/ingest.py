"""Turn a batch of raw Kafka messages into accepted events and dead letters, and record it.

Decoding is pure (:func:`classify`); recording (:class:`IngestService`) writes the inbox rows,
the dead letters and their outbox copies in one database transaction. The stream worker calls
:meth:`IngestService.process` once per batch and acks the batch's offsets only after it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import Engine

from points.events import bank_transaction_adapter
from points.intake import AcceptedEvent, RejectedMessage, record_batch

__all__ = ["BatchOutcome", "IngestService", "RawMessage", "classify"]

REASON_MAX_CHARS = 2000


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One consumed Kafka record, exactly as it arrived."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class BatchOutcome:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)


def _describe(error: ValidationError) -> str:
    """A one-line, field-named reason: 'amount_minor: Input should be greater than 0; ...'."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)[:REASON_MAX_CHARS]


def classify(
    messages: Sequence[RawMessage],
) -> tuple[list[AcceptedEvent], list[RejectedMessage]]:
    """Validate each message against the bank.transactions contract.

    A message is rejected when its value is empty, not JSON, fails the contract, or its key
    is not the customer id it carries (keys decide the partition, and so the per-customer
    order every rule relies on).
    """
    accepted: list[AcceptedEvent] = []
    rejected: list[RejectedMessage] = []

    def reject(msg: RawMessage, code: str, reason: str) -> None:
        rejected.append(
            RejectedMessage(
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                reason_code=code,
                reason=reason,
                key=msg.key,
                value=msg.value,
            )
        )

    for msg in messages:
        if not msg.value:
            reject(msg, "empty_value", "message has no value")
            continue
        try:
            event = bank_transaction_adapter.validate_json(msg.value)
        except ValidationError as exc:
            code = "invalid_json" if _is_json_error(exc) else "contract_violation"
            reject(msg, code, _describe(exc))
            continue
        if msg.key is None or msg.key.decode("utf-8", "replace") != event.customer_id:
            reject(
                msg,
                "key_mismatch",
                f"message key {msg.key!r} must equal customer_id {event.customer_id!r}",
            )
            continue
        accepted.append(
            AcceptedEvent(
                event_id=event.event_id,
                topic=msg.topic,
                event_type=event.event_type,
                customer_id=event.customer_id,
                partition=msg.partition,
                offset=msg.offset,
                payload=event.model_dump(mode="json"),
            )
        )
    return accepted, rejected


def _is_json_error(error: ValidationError) -> bool:
    return any(item["type"] == "json_invalid" for item in error.errors(include_url=False))


class IngestService:
    """Records consumed batches; one database transaction per batch."""

    def __init__(self, engine: Engine, *, dlq_topic: str) -> None:
        self._engine = engine
        self._dlq_topic = dlq_topic

    def process(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        accepted, rejected = classify(messages)
        with self._engine.begin() as conn:
            new_ids = record_batch(conn, accepted, rejected, dlq_topic=self._dlq_topic)
        outcome = BatchOutcome(
            stored=len(new_ids),
            duplicates=len(accepted) - len(new_ids),
            rejected=len(rejected),
        )
        for r in rejected:
            outcome.rejected_reasons[r.reason_code] = (
                outcome.rejected_reasons.get(r.reason_code, 0) + 1
            )
        return outcome
