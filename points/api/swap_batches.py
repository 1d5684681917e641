"""Swap requests and quotes accepted together: the swap POSTs of this process, group-committed.

Accepting one quote costs about twenty statements (the key looked up, the quote, link and
usage read, the ledger's batch for the hold: ids, balances, lots, accounts, entry, legs, lot
moves, hold; the swap row, the outbox row, the key stored) and a commit, whatever the number of
quotes accepted: the ledger and the swaps desk are batch code (``SwapDesk.open_swaps``). Under
load, requests arrive while transactions are running; here they wait for one to end and then
go together in the next, so the statements and the commit are shared (measured in
docs/scaling.md). A request that arrives when fewer than :data:`CONCURRENCY` batches run
starts at once (with whatever arrived in the same turn of the event loop). Quotes on
PostgreSQL go the same way, a batch being one statement
(:func:`points.api.exchange_once.store_quotes`).

One transaction per swap batch: the keys looked up (one statement), the new orders accepted
(:meth:`ExchangeService.open_swaps` on that connection) and their keys stored with the answers
(one statement), so the key and the effect still commit together (:mod:`exchange_once`).
What must not share a batch, nor run in two at once, waits for a later one, which sees the
first committed: a second request of the same customer (the same key then replays the first's
answer; another quote is counted against limits the first's swap already uses) and a second
acceptance of the same quote (it then finds the swap the first opened). When the batch's
transaction meets a concurrent one on the same quote or key (a unique conflict: another API
process) it is rolled back and each of its requests runs alone
(:func:`exchange_once.swap_once`), which handles those races one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Final, Generic, TypeVar

from sqlalchemy.exc import IntegrityError

from points.api import idempotency
from points.api.exchange_once import (
    SWAP_ROUTE,
    Answer,
    PricedQuote,
    replay,
    store_quotes,
    swap_digest,
    swap_once,
    swap_response,
)
from points.api.pgread import PgReader
from points.errors import PointsError
from points.exchange import ExchangeService
from points.exchange.swap_desk import SwapOrder

__all__ = ["BATCH_MAX", "GroupCommit", "SwapBatches", "accept_batch"]

R = TypeVar("R")

BATCH_MAX: Final = 64
"""Requests per transaction at most (the ledger batch of their holds stays small)."""
CONCURRENCY: Final = 2
"""Batches running at once (each its own transaction, worker thread or pooled connection)."""


class _KeyTaken(Exception):
    """Another transaction stored one of the batch's keys first."""


def accept_batch(exchange: ExchangeService, requests: list[tuple[str, str, str]],
                 now: datetime) -> list[Answer | Exception]:
    """Answer (customer id, key, quote id) requests, no two with the same customer and key
    nor the same quote, in one transaction; per request an answer or the error to raise.
    Blocking: run it in a worker thread."""
    if len(requests) == 1:
        return [_alone(exchange, *requests[0], now)]
    digests = [swap_digest(quote_id) for _, _, quote_id in requests]
    answers: list[Answer | Exception | None] = [None] * len(requests)
    try:
        with exchange.engine.begin() as conn:
            stored = idempotency.lookup_many(conn, [(c, k) for c, k, _ in requests])
            todo: list[int] = []
            for i, (customer_id, key, _) in enumerate(requests):
                found = stored.get((customer_id, key))
                if found is None:
                    todo.append(i)
                    continue
                try:
                    answers[i] = replay(found, digests[i])
                except PointsError as exc:
                    answers[i] = exc
            results = exchange.open_swaps(
                [SwapOrder(requests[i][0], requests[i][2]) for i in todo], conn=conn)
            new: list[tuple[str, str, str, idempotency.StoredResponse]] = []
            for i, result in zip(todo, results, strict=True):
                try:
                    response = swap_response(result, digests[i])
                except PointsError as exc:  # a server error: answered, not stored
                    answers[i] = exc
                    continue
                new.append((requests[i][0], requests[i][1], SWAP_ROUTE, response))
                answers[i] = Answer(response.status_code, response.body,
                                    response.content_type, replayed=False)
            if idempotency.store_many(conn, new, now=now) != len(new):
                raise _KeyTaken
    except (_KeyTaken, IntegrityError):
        return [_alone(exchange, *request, now) for request in requests]
    return [a for a in answers if a is not None]


def _alone(exchange: ExchangeService, customer_id: str, key: str, quote_id: str,
           now: datetime) -> Answer | Exception:
    try:
        return swap_once(exchange, customer_id, key, quote_id, now)
    except Exception as exc:  # answered to its own request, as the route would raise it
        return exc


class GroupCommit(Generic[R]):
    """A queue of requests run in batches, at most ``concurrency`` batches at once: requests
    that arrive while the batches run go together in the next. Requests sharing a conflict
    key (``conflicts``) never share a batch nor run in two batches at once: the later one
    waits for a batch that starts after the first's ended, and so sees its outcome committed.

    Two batches at once, not one: while one waits on the database (round trips, the commit's
    WAL flush) the other runs; measured in docs/scaling.md."""

    def __init__(
        self,
        run: Callable[[list[R]], Awaitable[list[Answer | Exception]]],
        conflicts: Callable[[R], tuple[Hashable, ...]],
        batch_max: int = BATCH_MAX,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._run = run
        self._conflicts = conflicts
        self._batch_max = batch_max
        self._concurrency = concurrency
        self._queue: list[tuple[R, asyncio.Future[Answer]]] = []
        self._running = 0
        self._busy: set[Hashable] = set()  # the conflict keys of the batches running
        self._kick_pending = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, request: R) -> Answer:
        """The request's answer, once its batch ran; raises as the route would."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Answer] = loop.create_future()
        self._queue.append((request, answer))
        if not self._kick_pending:  # after this turn of the loop: arrivals of the same turn
            self._kick_pending = True  # go together
            loop.call_soon(self._kick)
        return await answer

    def _kick(self) -> None:
        self._kick_pending = False
        while self._running < self._concurrency and self._queue:
            batch, keys = self._next_batch()
            if not batch:
                return
            self._running += 1
            self._busy |= keys
            task = asyncio.get_running_loop().create_task(self._run_batch(batch, keys))
            self._tasks.add(task)  # a reference until it ends (the loop keeps weak ones)
            task.add_done_callback(self._tasks.discard)

    def _next_batch(self) -> tuple[list[tuple[R, asyncio.Future[Answer]]], set[Hashable]]:
        batch: list[tuple[R, asyncio.Future[Answer]]] = []
        taken: set[Hashable] = set()
        later: list[tuple[R, asyncio.Future[Answer]]] = []
        for item in self._queue:
            keys = self._conflicts(item[0])
            if (len(batch) >= self._batch_max or not taken.isdisjoint(keys)
                    or not self._busy.isdisjoint(keys)):
                later.append(item)
                continue
            taken.update(keys)
            batch.append(item)
        self._queue = later
        return batch, taken

    async def _run_batch(self, batch: list[tuple[R, asyncio.Future[Answer]]],
                         keys: set[Hashable]) -> None:
        try:
            try:
                answers = await self._run([request for request, _ in batch])
            except Exception as exc:
                answers = [exc] * len(batch)
            for (_, future), answer in zip(batch, answers, strict=True):
                if future.done():  # the client went away
                    continue
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
        finally:
            self._running -= 1
            self._busy -= keys
            self._kick()


@dataclass(frozen=True, slots=True)
class _SwapRequest:
    customer_id: str
    key: str
    quote_id: str


class SwapBatches:
    """This process's swap requests (:func:`accept_batch` per batch, in a worker thread) and,
    on PostgreSQL, its quotes (:func:`points.api.exchange_once.store_quotes` per batch, on
    the event loop), each group-committed."""

    def __init__(
        self,
        exchange: Callable[[], ExchangeService],
        pg: PgReader | None,
        run_in_thread: Callable[[Callable[[], list[Answer | Exception]]],
                                Awaitable[list[Answer | Exception]]],
        clock: Callable[[], datetime],
        batch_max: int = BATCH_MAX,
    ) -> None:
        self._exchange = exchange
        self._pg = pg
        self._run_in_thread = run_in_thread
        self._clock = clock
        # one customer's swaps never in two transactions at once: their daily and yearly
        # limits are read before the ledger locks the wallet (within one batch the desk
        # counts them in order); the same key or quote waits for the next batch anyway
        self._swaps: GroupCommit[_SwapRequest] = GroupCommit(
            self._accept, lambda r: (("customer", r.customer_id), ("quote", r.quote_id)),
            batch_max)
        self._quotes: GroupCommit[PricedQuote] = GroupCommit(
            self._store_quotes, lambda q: ((q.customer_id, q.key),), batch_max)

    async def accept(self, customer_id: str, key: str, quote_id: str) -> Answer:
        """Accept the quote under the key, in the next batch; raises as the route would."""
        self._exchange()  # not configured: refused now, not queued
        return await self._swaps.submit(_SwapRequest(customer_id, key, quote_id))

    @property
    def store_quote(self) -> Callable[[PricedQuote], Awaitable[Answer]] | None:
        """Where :func:`points.api.exchange_once.quote_once` stores a priced quote: the quote
        batches on PostgreSQL, None elsewhere (one transaction per quote)."""
        return None if self._pg is None else self._quotes.submit

    async def _accept(self, batch: list[_SwapRequest]) -> list[Answer | Exception]:
        work = [(r.customer_id, r.key, r.quote_id) for r in batch]
        return await self._run_in_thread(
            partial(accept_batch, self._exchange(), work, self._clock()))

    async def _store_quotes(self, batch: list[PricedQuote]) -> list[Answer | Exception]:
        assert self._pg is not None
        return await store_quotes(self._pg, batch, self._clock())
