"""The outbox: messages to publish, written in the transaction that decided them.

Writers queue rows with :func:`enqueue` (ledger notifications, partner requests) or
:func:`points.dead_letters.record_dead_letters` (``points.dlq`` copies), inside their own
transaction; each row is queued at most once (its ``dedupe_key`` is unique). The relay
(streams/relay.py, the Kafka side) reads them after the commit through :class:`OutboxStore`.

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
from base64 import b64encode
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    String,
    Table,
    func,
    select,
    text,
    update,
)

from points import jsonfast
from points.db import insert_ignore, metadata

__all__ = [
    "BUNDLED_HEADERS",
    "BUNDLE_CONTENT_TYPE",
    "BundledMessage",
    "OutboxBundle",
    "OutboxMessage",
    "OutboxStore",
    "bundle_row",
    "enqueue",
    "outbox_table",
    "unbundle",
]

# BigInteger ids autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

outbox_table = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("topic", String(249), nullable=False),
    Column("message_key", LargeBinary, nullable=True),
    Column("message_value", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    # Unique per logical message so that a replayed batch cannot enqueue the same one twice.
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("relayed_at", DateTime(timezone=True), nullable=True, index=True),
)


# -- writing: queue messages in the caller's transaction --------------------------------------

_OUTBOX_INSERT_PG = text(
    """
    INSERT INTO outbox (topic, message_key, message_value, headers, dedupe_key)
    SELECT r.topic, decode(r.message_key, 'base64'), decode(r.message_value, 'base64'),
           r.headers, r.dedupe_key
    FROM json_to_recordset(CAST(:rows AS json)) AS r(
        topic varchar, message_key text, message_value text, headers json, dedupe_key varchar)
    ON CONFLICT (dedupe_key) DO NOTHING
    """
)


def enqueue(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Queue messages (rows of topic, message_key, message_value, headers, dedupe_key), each
    at most once (by dedupe_key), in the caller's transaction."""
    if not rows:
        return
    if conn.dialect.name != "postgresql" or len(rows) <= 4:
        # A few rows (a bundle, a swap's messages) go as they are: bytes travel as binary
        # parameters, where base64 inside JSON would cost more than the insert.
        insert_ignore(conn, outbox_table, list(rows))
        return
    # The batch travels as ONE JSON parameter unpacked by json_to_recordset (as the inbox's
    # insert does, points/inbox.py); bytes go base64-encoded inside it.
    payload = [
        {
            "topic": r["topic"],
            "message_key": None
            if r["message_key"] is None
            else b64encode(r["message_key"]).decode(),
            "message_value": b64encode(r["message_value"]).decode(),
            "headers": r["headers"],
            "dedupe_key": r["dedupe_key"],
        }
        for r in rows
    ]
    conn.execute(_OUTBOX_INSERT_PG, {"rows": jsonfast.dumps(payload)})


# -- bundles: many messages of one topic in one outbox row ------------------------------------
#
# The earning worker announces every entry it commits on points.ledger: one outbox row per
# entry was a sixth of the database work of a batch (an insert plus its index entries, then
# the relay's read and mark). A bundle row carries all of a batch's announcements; the relay
# expands it back into the same messages (key, value, per-message dedupe_key) in the same order.
# Bundled values are JSON and keys UTF-8 text, which is what points.ledger carries.

BUNDLE_CONTENT_TYPE = "application/vnd.points.outbox-bundle+json"

#: the headers of every bundled message (besides its dedupe_key)
BUNDLED_HEADERS: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


class BundledMessage(NamedTuple):
    key: str
    #: the message value: a JSON-ready object when bundling, its JSON bytes when unbundled
    value: Any
    dedupe_key: str


def bundle_row(topic: str, messages: Sequence[tuple[str, Any, str]]) -> dict[str, Any]:
    """One outbox row holding ``messages``: (key, JSON-ready value, dedupe key) each, plain
    tuples or :class:`BundledMessage`; the values are encoded here in one call. The row's own
    dedupe key is the first message's (each message's is unique, so a bundle is queued at most
    once too)."""
    if not messages:
        raise ValueError("an outbox bundle needs at least one message")
    value = jsonfast.dumps_bytes(
        [{"key": key, "value": body, "dedupe_key": dedupe} for key, body, dedupe in messages]
    )
    return {
        "topic": topic,
        "message_key": None,
        "message_value": value,
        "headers": {"content-type": BUNDLE_CONTENT_TYPE},
        "dedupe_key": f"bundle:{messages[0][2]}",
    }


def unbundle(value: bytes) -> list[BundledMessage]:
    """The messages of a bundle row's value, in the order they were bundled, each value as
    its own JSON document (bytes)."""
    return [
        BundledMessage(str(m["key"]), orjson.dumps(m["value"]), str(m["dedupe_key"]))
        for m in orjson.loads(value)
    ]


# -- reading: what the relay sends, and marking it sent ---------------------------------------


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
    """One outbox row holding many messages of one topic (:func:`bundle_row`)."""

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


# An arbitrary constant naming "the outbox relay" among the cluster's advisory locks.
RELAY_LOCK_KEY = 0x706F696E7473_01


class OutboxStore:
    """The relay's side of the outbox: the lease, the pending rows, marking them relayed."""

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
        table = outbox_table
        query = (
            select(table).where(table.c.relayed_at.is_(None)).order_by(table.c.id).limit(limit)
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
                update(outbox_table)
                .where(outbox_table.c.id.in_(sorted(set(ids))))
                .values(relayed_at=datetime.now(UTC))
            )
