"""Idempotency-Key for every POST: the first response is stored and replayed.

Same customer, same key, same request (method, route, canonical JSON of the validated body)
→ the stored response, with ``Idempotent-Replayed: true``. Same key, another request →
``idempotency_key_reused`` (422), nothing runs. Keys are scoped per customer. Refusals with a
4xx problem are stored too (a replay gets the same refusal); server errors are not, so the
client may retry them under the same key.

Two requests racing on one new key both run; the first insert wins (primary key) and the
loser answers with the winner's stored response. That is safe for requests without side
effects outside this table (the earning preview, quotes) and for the exchange POSTs, whose
effects are keyed on what they act on (one swap per quote id, cancel and link requests
idempotent in the service), so running one twice changes nothing twice; the key is stored
after the exchange's own transaction commits (``ExchangeService`` takes no connection). See
docs/api.md, "Idempotency of the exchange POSTs".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from points.api.tables import idempotency_keys

__all__ = ["StoredResponse", "lookup", "request_hash", "store"]

KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"


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
    insert: Any = (
        postgresql.insert(idempotency_keys)
        if conn.dialect.name == "postgresql"
        else sqlite.insert(idempotency_keys)
    )
    result = conn.execute(insert.values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)
