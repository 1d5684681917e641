"""The swap quote and the swap request, exactly once per Idempotency-Key, in one transaction.

``POST /v1/me/swaps/quote`` and ``POST /v1/me/swaps`` are what a customer's swap costs the
API. Profiled under ``make bench-api`` (docs/scaling.md), each request took three worker
thread hand-offs and three transactions: the key looked up, the exchange's own transaction,
then the key stored. Here each is one:

- **the quote** is priced in Python (:meth:`ExchangeService.price`, no database), then on
  PostgreSQL ONE statement (:data:`QUOTES_ONCE_SQL`, autocommit, on the event loop over the
  async pool of :mod:`points.api.pgread`) looks the key up and, if it is new, stores the quote
  and the key with its response together, for all the quotes that queued meanwhile
  (:mod:`points.api.swap_batches`). Elsewhere (SQLite) the same in one transaction.
- **the swap request** runs in one worker thread and ONE transaction: key looked up, the quote
  accepted (:meth:`ExchangeService.request_swap` on that connection: hold, swap row, outbox)
  and the key stored with the response, committed together.

The guarantees of :mod:`points.api.idempotency` hold, and one more: the key and the effect
commit together, so a stored key always has its effect and an effect always its key.

- Same key, same request: the stored response, replayed (``Idempotent-Replayed: true``).
- Same key, another request: ``idempotency_key_reused``, nothing runs.
- Two requests racing on one new key: the second waits on the first's key (its insert
  conflicts once the first commits), rolls its own work back, and answers with the first's
  response. For a swap the race usually ends earlier: the second's hold or swap row conflicts
  with the first's (one swap per quote), the transaction is run again and finds the stored
  key, or under another key the swap already opened.
- A refusal (a 4xx problem) is stored like an answer; a server error is not, and since the
  effect rolls back with it, a retry under the same key runs anew.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from points import jsonfast
from points.api import exchange as exchange_views
from points.api import idempotency
from points.api.errors import IdempotencyKeyReused
from points.api.pgread import PgReader
from points.api.problems import PROBLEM_JSON, error_response, status_for
from points.db import insert_ignore
from points.errors import PointsError, error_for_code
from points.exchange import ExchangeService, SwapView
from points.exchange.store import quote_to_row
from points.exchange.swap_desk import SwapOrder, SwapRefused
from points.exchange.tables import swap_quotes

__all__ = [
    "QUOTES_ONCE_SQL",
    "QUOTE_ROUTE",
    "SWAP_ROUTE",
    "Answer",
    "PricedQuote",
    "once_in_transaction",
    "quote_once",
    "refusal",
    "replay",
    "store_quotes",
    "swap_digest",
    "swap_once",
    "swap_response",
]

QUOTE_ROUTE: Final = "/v1/me/swaps/quote"
SWAP_ROUTE: Final = "/v1/me/swaps"
JSON: Final = "application/json"


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: str
    content_type: str
    replayed: bool


def replay(stored: idempotency.StoredResponse, digest: str) -> Answer:
    """The stored answer to this key, if it was for this very request."""
    if stored.request_hash != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; use a new key"
        )
    return Answer(stored.status_code, stored.body, stored.content_type, replayed=True)


def refusal(exc: PointsError, digest: str) -> idempotency.StoredResponse:
    """A refusal's problem, to store under the key; a server error is raised instead (not
    stored: the client may retry it under the same key)."""
    if status_for(exc)[0] >= 500:
        raise exc
    refused = error_response(exc)
    return idempotency.StoredResponse(
        digest, refused.status_code, bytes(refused.body).decode(), PROBLEM_JSON)


class _KeyTaken(Exception):
    """Another request stored this key first: undo this one's work."""


def once_in_transaction(
    engine: Engine,
    customer_id: str,
    key: str,
    route: str,
    digest: str,
    effect: Callable[[Connection], idempotency.StoredResponse],
    now: datetime,
) -> Answer:
    """Look the key up, run ``effect`` and store the key with its response, all in ONE
    transaction of ``engine``. A unique conflict inside the effect (an identical request
    committed the same hold or swap meanwhile) runs the whole transaction once more."""
    for attempt in (1, 2):
        try:
            with engine.begin() as conn:
                stored = idempotency.lookup(conn, customer_id, key)
                if stored is not None:
                    return replay(stored, digest)
                response = effect(conn)
                if not idempotency.store(conn, customer_id, key, method="POST", route=route,
                                         response=response, now=now):
                    raise _KeyTaken
                return Answer(response.status_code, response.body, response.content_type,
                              replayed=False)
        except _KeyTaken:
            break
        except IntegrityError:
            if attempt == 2:
                raise
    with engine.connect() as conn:
        stored = idempotency.lookup(conn, customer_id, key)
    if stored is None:  # the winner's key went (purged) between its commit and this read
        raise RuntimeError("an Idempotency-Key taken by a concurrent request is gone")
    return replay(stored, digest)


def swap_response(result: SwapView | SwapRefused, digest: str) -> idempotency.StoredResponse:
    """What ``POST /v1/me/swaps`` answers for an accepted quote's result: 202 and the swap, or
    the refusal's problem (a server error is raised)."""
    try:
        if isinstance(result, SwapRefused):
            raise result.error()
        if (result.state == "rejected" and result.status == "rejected"
                and not result.reason.startswith("partner_rejected")):
            # The ledger refused the hold (insufficient_points): the swap is stored as
            # rejected with nothing held; the request answers with the ledger's code.
            raise error_for_code(result.reason.partition(":")[0].strip(),
                                 f"swap {result.swap_id} refused: {result.reason}")
    except PointsError as exc:
        return refusal(exc, digest)
    return idempotency.StoredResponse(
        digest, 202, exchange_views.swap_body(result).model_dump_json(), JSON)


def swap_digest(quote_id: str) -> str:
    return idempotency.request_hash("POST", SWAP_ROUTE, {"quote_id": quote_id})


def swap_once(exchange: ExchangeService, customer_id: str, key: str, quote_id: str,
              now: datetime) -> Answer:
    """``POST /v1/me/swaps``: accept the quote once (blocking: run it in a worker thread)."""
    digest = swap_digest(quote_id)

    def effect(conn: Connection) -> idempotency.StoredResponse:
        [result] = exchange.open_swaps([SwapOrder(customer_id, quote_id)], conn=conn)
        return swap_response(result, digest)

    return once_in_transaction(exchange.engine, customer_id, key, SWAP_ROUTE, digest, effect,
                               now)


# The quotes of a batch (distinct customer and key each) looked up by key and, those whose key is
# new, stored with their key and answer: ONE statement (one round trip, one commit: autocommit).
# Per input row: a row with a request_hash is the stored answer; a row without one says the key
# was stored now; no row at all, that a request racing on the same key committed it between
# this statement's snapshot and its insert.
QUOTES_ONCE_SQL: Final = """
WITH input AS (
    SELECT * FROM json_to_recordset(%(rows)s::json) AS i(
        customer_id text, key text, quote_id text, partner_id text, rate_version text,
        points bigint, fee_points bigint, partner_units bigint, rate_num bigint,
        rate_den bigint, quoted_at timestamptz, expires_at timestamptz, digest text,
        response_body text)
), existing AS (
    SELECT k.customer_id, k.idempotency_key, k.request_hash, k.status_code, k.response_body,
           k.content_type
    FROM api_idempotency_keys k
    JOIN input i ON k.customer_id = i.customer_id AND k.idempotency_key = i.key
), fresh AS (
    SELECT i.* FROM input i
    WHERE NOT EXISTS (SELECT FROM existing e
                      WHERE e.customer_id = i.customer_id AND e.idempotency_key = i.key)
), quote AS (
    INSERT INTO swap_quotes (quote_id, customer_id, partner_id, rate_version, points,
                             fee_points, partner_units, rate_num, rate_den, quoted_at,
                             expires_at)
    SELECT quote_id, customer_id, partner_id, rate_version, points, fee_points,
           partner_units, rate_num, rate_den, quoted_at, expires_at
    FROM fresh
    ON CONFLICT DO NOTHING
), stored AS (
    INSERT INTO api_idempotency_keys (customer_id, idempotency_key, method, route,
                                      request_hash, status_code, response_body,
                                      content_type, created_at)
    SELECT customer_id, key, 'POST', %(route)s, digest, 201, response_body, %(content_type)s,
           %(now)s
    FROM fresh
    ON CONFLICT DO NOTHING
    RETURNING customer_id, idempotency_key
)
SELECT customer_id, idempotency_key, request_hash, status_code, response_body, content_type
FROM existing
UNION ALL
SELECT customer_id, idempotency_key, NULL, NULL, NULL, NULL FROM stored
"""

_LOOKUP_SQL: Final = """
SELECT request_hash, status_code, response_body, content_type FROM api_idempotency_keys
WHERE customer_id = %(customer_id)s AND idempotency_key = %(key)s
"""

@dataclass(frozen=True, slots=True)
class PricedQuote:
    """A quote priced for a request, to store with the request's key (:func:`store_quotes`)."""

    customer_id: str
    key: str
    digest: str
    row: dict[str, Any]  # points.exchange.store.quote_to_row
    body: str  # the answer: the SwapQuote's JSON


async def store_quotes(pg: PgReader, quotes: Sequence[PricedQuote], now: datetime
                       ) -> list[Answer | Exception]:
    """Store priced quotes (no two with the same customer and key) with their keys in ONE
    statement; per quote its answer: new (201), or the answer stored under its key before."""
    # the batch as ONE JSON parameter (orjson, in C): psycopg adapting fourteen lists element
    # by element cost more than the statement (profiled)
    params = {
        "rows": jsonfast.dumps([{**q.row, "key": q.key, "digest": q.digest,
                                 "response_body": q.body} for q in quotes]),
        "route": QUOTE_ROUTE, "content_type": JSON, "now": now,
    }
    found = {(str(c), str(k)): rest for c, k, *rest in await pg.fetch(QUOTES_ONCE_SQL, params)}
    answers: list[Answer | Exception] = []
    for q in quotes:
        row = found.get((q.customer_id, q.key))
        if row is None:  # lost the race on this key: the winner's answer
            again = await pg.fetch(_LOOKUP_SQL, {"customer_id": q.customer_id, "key": q.key})
            if not again:  # the winner's key went (purged) between its commit and this read
                answers.append(RuntimeError("a key taken by a concurrent request is gone"))
                continue
            row = list(again[0])
        request_hash, status_code, response_body, content_type = row
        if request_hash is None:
            answers.append(Answer(201, q.body, JSON, replayed=False))
            continue
        try:
            answers.append(replay(idempotency.StoredResponse(
                str(request_hash), int(status_code), str(response_body), str(content_type)),
                q.digest))
        except PointsError as exc:
            answers.append(exc)
    return answers


async def quote_once(
    exchange: ExchangeService,
    store_priced: Callable[[PricedQuote], Awaitable[Answer]] | None,
    run_in_thread: Callable[[Callable[[], Answer]], Awaitable[Answer]],
    customer_id: str,
    key: str,
    partner_id: str,
    points: int,
    now: datetime,
) -> Answer:
    """``POST /v1/me/swaps/quote``: price the quote, then store it once. On PostgreSQL through
    ``store_priced`` (the process's quote batches: :func:`store_quotes`, one statement on the
    event loop); otherwise in one transaction in a worker thread (``run_in_thread``). A
    refusal to price is stored under the key like an answer (in a worker thread)."""
    digest = idempotency.request_hash(
        "POST", QUOTE_ROUTE, {"partner_id": partner_id, "points": points})
    try:
        quote = exchange.price(customer_id, partner_id, points)
    except PointsError as exc:
        refused = refusal(exc, digest)
        return await run_in_thread(lambda: once_in_transaction(
            exchange.engine, customer_id, key, QUOTE_ROUTE, digest, lambda _c: refused, now))
    body = exchange_views.quote_body(quote).model_dump_json()
    row = quote_to_row(customer_id, quote)
    if store_priced is not None:
        return await store_priced(PricedQuote(customer_id, key, digest, row, body))

    def effect(conn: Connection) -> idempotency.StoredResponse:
        insert_ignore(conn, swap_quotes, row)
        return idempotency.StoredResponse(digest, 201, body, JSON)

    return await run_in_thread(lambda: once_in_transaction(
        exchange.engine, customer_id, key, QUOTE_ROUTE, digest, effect, now))
