"""Idempotency-Key for every POST: the first response is stored and replayed.

Same customer, same key, same request (method, route, canonical JSON of the validated body)
→ the stored response, with ``Idempotent-Replayed: true``. Same key, another request →
``idempotency_key_reused`` (422), nothing runs. Keys are scoped per customer. Refusals with a
4xx problem are stored too (a replay gets the same refusal); server errors are not, so the
client may retry them under the same key.

Two requests racing on one new key both run; the first insert wins (primary key) and the
loser answers with the winner's stored response. That is safe for requests without side
effects outside this table (the earning preview) and for the cancel and link POSTs, whose
effects are keyed on what they act on (cancel and link requests idempotent in the service),
so running one twice changes nothing twice; their key is stored after the exchange's own
transaction commits. The quote and swap POSTs store their key in the transaction of their
effect (:mod:`points.api.exchange_once`, :mod:`points.api.swap_batches`, with
:func:`lookup_many` and :func:`store_many` for a batch). See docs/api.md, "Idempotency of
the exchange POSTs".

Retention: a key older than ``POINTS_API__IDEMPOTENCY__RETENTION_HOURS`` may be deleted
(:func:`purge_chunk`, run by :func:`purge_periodically` in the API process and by
``points-ledger api purge-idempotency-keys``); the same key then runs the request anew.
Deletes go oldest first through the ``created_at`` b-tree of migration 0006, a bounded chunk
per transaction, so no delete holds its locks for long.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

import anyio
from sqlalchemy import Connection, delete, func, select, tuple_

from points.api.tables import idempotency_keys
from points.db import insert_ignore

__all__ = [
    "PURGE_CHUNK",
    "StoredResponse",
    "count_expired",
    "lookup",
    "lookup_many",
    "purge_chunk",
    "purge_periodically",
    "request_hash",
    "retention_cutoff",
    "store",
    "store_many",
]

log = logging.getLogger(__name__)

KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"
# Keys deleted per statement (and transaction) by a purge.
PURGE_CHUNK: Final = 1_000


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: str
    content_type: str


def request_hash(method: str, route: str, body: Mapping[str, Any] | None) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method}\x1f{route}\x1f{canonical}".encode()).hexdigest()


def lookup(conn: Connection, customer_id: str, key: str) -> StoredResponse | None:
    row = conn.execute(
        select(idempotency_keys.c.request_hash, idempotency_keys.c.status_code,
               idempotency_keys.c.response_body, idempotency_keys.c.content_type)
        .where(idempotency_keys.c.customer_id == customer_id,
               idempotency_keys.c.idempotency_key == key)
    ).first()
    if row is None:
        return None
    return StoredResponse(str(row[0]), int(row[1]), str(row[2]), str(row[3]))


def lookup_many(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredResponse]:
    """The stored responses of these (customer id, key) pairs, in one statement."""
    if not keys:
        return {}
    table = idempotency_keys
    rows = conn.execute(
        select(table.c.customer_id, table.c.idempotency_key, table.c.request_hash,
               table.c.status_code, table.c.response_body, table.c.content_type)
        .where(tuple_(table.c.customer_id, table.c.idempotency_key).in_(list(keys)))
    )
    return {(str(c), str(k)): StoredResponse(str(h), int(s), str(b), str(t))
            for c, k, h, s, b, t in rows}


def store_many(
    conn: Connection,
    stored: Sequence[tuple[str, str, str, StoredResponse]],
    *,
    now: datetime,
) -> int:
    """Insert (customer id, key, route, response) rows, POSTs all, in one statement; how many
    were new (fewer than given: another request stored some of these keys first)."""
    if not stored:
        return 0
    rows = [
        {"customer_id": customer_id, "idempotency_key": key, "method": "POST", "route": route,
         "request_hash": r.request_hash, "status_code": r.status_code,
         "response_body": r.body, "content_type": r.content_type, "created_at": now}
        for customer_id, key, route, r in stored
    ]
    # executemany of the cached one-row statement: compiling a multi-row INSERT per batch
    # size cost more than the insert (profiled); the driver sums the rows inserted
    return insert_ignore(conn, idempotency_keys, rows)


def store(
    conn: Connection,
    customer_id: str,
    key: str,
    *,
    method: str,
    route: str,
    response: StoredResponse,
    now: datetime,
) -> bool:
    """Insert the response under the key; False if another request stored it first."""
    values = {
        "customer_id": customer_id,
        "idempotency_key": key,
        "method": method,
        "route": route,
        "request_hash": response.request_hash,
        "status_code": response.status_code,
        "response_body": response.body,
        "content_type": response.content_type,
        "created_at": now,
    }
    return insert_ignore(conn, idempotency_keys, values) == 1


def retention_cutoff(now: datetime, retention_hours: int) -> datetime:
    """Keys created before this instant are past the retention (UTC: SQLite compares text)."""
    return (now - timedelta(hours=retention_hours)).astimezone(UTC)


def count_expired(conn: Connection, cutoff: datetime) -> int:
    """How many stored keys were created before ``cutoff``."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(idempotency_keys)
            .where(idempotency_keys.c.created_at < cutoff)
        ).scalar_one()
    )


def purge_chunk(conn: Connection, cutoff: datetime, limit: int = PURGE_CHUNK) -> int:
    """Delete at most ``limit`` keys created before ``cutoff``, oldest first; how many went.

    On PostgreSQL the rows are claimed with ``FOR UPDATE SKIP LOCKED``: purges running at
    once (several API workers, a cron job) take different rows instead of waiting for each
    other. A result below ``limit`` means nothing older is left (or the rest is being purged
    by someone else).
    """
    table = idempotency_keys
    victims = (
        select(table.c.customer_id, table.c.idempotency_key)
        .where(table.c.created_at < cutoff)
        .order_by(table.c.created_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        victims = victims.with_for_update(skip_locked=True)
    result = conn.execute(
        delete(table).where(tuple_(table.c.customer_id, table.c.idempotency_key).in_(victims))
    )
    return int(result.rowcount)


async def purge_periodically(
    write: Callable[[Callable[[Connection], int]], Awaitable[int]],
    clock: Callable[[], datetime],
    *,
    retention_hours: int,
    interval_s: float,
    chunk: int = PURGE_CHUNK,
) -> None:
    """Purge expired keys every ``interval_s`` until cancelled (the API's lifespan).

    ``write`` runs one function in its own transaction (``ApiContext.write``), so each chunk
    commits on its own and a cancellation lands between chunks. The first purge comes at a
    random moment within the first interval: API workers started together do not purge
    together, and a process restarted more often than the interval still purges. A failed
    purge is logged and tried again at the next interval; it never stops the API.
    """
    await anyio.sleep(random.uniform(0, interval_s))
    while True:
        try:
            cutoff = retention_cutoff(clock(), retention_hours)
            one_chunk = partial(purge_chunk, cutoff=cutoff, limit=chunk)
            deleted = 0
            while True:
                done = await write(one_chunk)
                deleted += done
                if done < chunk:
                    break
            if deleted:
                log.info("purged %d idempotency keys older than %s", deleted, cutoff.isoformat())
        except Exception:
            log.warning("idempotency key purge failed; next try in %ss", interval_s, exc_info=True)
        await anyio.sleep(interval_s)
