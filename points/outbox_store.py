"""Read and mark outbox rows for the relay. The relay itself (Kafka side) lives in streams/.

Delivery is at least once: a row is marked relayed only after the broker acknowledged it, so a
crash in between re-sends it. Every message carries its ``dedupe_key`` as a header so that
consumers can drop the rare duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from points.intake import outbox

__all__ = ["OutboxMessage", "OutboxStore"]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, Any]
    dedupe_key: str


class OutboxStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def pending(self, limit: int) -> list[OutboxMessage]:
        """The oldest unrelayed messages, in the order they were written."""
        query = (
            select(outbox).where(outbox.c.relayed_at.is_(None)).order_by(outbox.c.id).limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            OutboxMessage(
                id=row["id"],
                topic=row["topic"],
                key=row["message_key"],
                value=row["message_value"],
                headers=dict(row["headers"] or {}),
                dedupe_key=row["dedupe_key"],
            )
            for row in rows
        ]

    def mark_relayed(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._engine.begin() as conn:
            conn.execute(
                update(outbox).where(outbox.c.id.in_(ids)).values(relayed_at=datetime.now(UTC))
            )
