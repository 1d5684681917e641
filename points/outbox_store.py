"""Read and mark outbox rows for the relay. The relay itself (Kafka side) lives in streams/.

Delivery is at least once: a row is marked relayed only after the broker acknowledged it, so a
crash in between re-sends it. Every message carries its ``dedupe_key`` as a header so that
consumers can drop the rare duplicate.

Several processes run a relay (the earning worker and the partner worker each do, and a group
may have several of each). :meth:`OutboxStore.lease` lets one of them relay at a time — a
PostgreSQL advisory lock, or a file lock beside an SQLite database — so rows are not sent once
per relay. A relay that does not get the lease skips its round.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, text, update

from points.intake import BUNDLE_CONTENT_TYPE, outbox, unbundle

__all__ = ["BUNDLED_HEADERS", "OutboxBundle", "OutboxMessage", "OutboxStore"]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, Any]
    dedupe_key: str


@dataclass(frozen=True, slots=True)
class OutboxBundle:
    """One outbox row holding many messages of one topic (points/intake.py)."""

    id: int
    topic: str
    value: bytes

    def messages(self) -> list[OutboxMessage]:
        return [
            OutboxMessage(
                id=self.id,
                topic=self.topic,
                key=m.key.encode(),
                value=m.value,
                headers=dict(BUNDLED_HEADERS),
                dedupe_key=m.dedupe_key,
            )
            for m in unbundle(self.value)
        ]


#: the headers of every bundled message (besides its dedupe_key)
BUNDLED_HEADERS: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


# An arbitrary constant naming "the outbox relay" among the cluster's advisory locks.
RELAY_LOCK_KEY = 0x706F696E7473_01


class OutboxStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextlib.contextmanager
    def lease(self) -> Iterator[bool]:
        """Hold the right to relay for one round; yields False when another relay has it."""
        if self._engine.dialect.name == "postgresql":
            with self._engine.connect() as conn:
                got = bool(
                    conn.execute(
                        text("SELECT pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK_KEY}
                    ).scalar()
                )
                conn.commit()
                try:
                    yield got
                finally:
                    if got:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RELAY_LOCK_KEY})
                        conn.commit()
            return
        database = self._engine.url.database
        if not database or database == ":memory:":
            yield True  # one process owns an in-memory database
            return
        fd = os.open(f"{database}.relay.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def pending(self, limit: int) -> list[OutboxMessage]:
        """The messages of the oldest ``limit`` unrelayed rows, in the order they were written
        (a bundle row gives all its messages)."""
        messages: list[OutboxMessage] = []
        for row in self.pending_rows(limit):
            if isinstance(row, OutboxBundle):
                messages.extend(row.messages())
            else:
                messages.append(row)
        return messages

    def pending_rows(self, limit: int) -> list[OutboxMessage | OutboxBundle]:
        """The oldest ``limit`` unrelayed rows, in the order they were written; a bundle row
        comes as it is stored, for a relay that sends its messages in bulk."""
        query = (
            select(outbox).where(outbox.c.relayed_at.is_(None)).order_by(outbox.c.id).limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        out: list[OutboxMessage | OutboxBundle] = []
        for row in rows:
            headers = dict(row["headers"] or {})
            if headers.get("content-type") == BUNDLE_CONTENT_TYPE:
                out.append(OutboxBundle(row["id"], row["topic"], row["message_value"]))
                continue
            out.append(
                OutboxMessage(
                    id=row["id"],
                    topic=row["topic"],
                    key=row["message_key"],
                    value=row["message_value"],
                    headers=headers,
                    dedupe_key=row["dedupe_key"],
                )
            )
        return out

    def mark_relayed(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(sorted(set(ids))))
                .values(relayed_at=datetime.now(UTC))
            )
