"""The balance hot path on PostgreSQL: async psycopg on the event loop, no thread hand-off.

Measured on the benchmark (2 cores, 50 connections): running the balance read in a worker
thread through the SQLAlchemy pool cost about a third of the API's CPU per request in thread
hand-offs alone (anyio ``run_sync``, queue and condition wake-ups). Here the query runs on
the event loop over a ``psycopg_pool`` pool of async connections in autocommit mode (one round
trip, no BEGIN/ROLLBACK), and psycopg prepares the statement after its first few runs.

The SQL is the same shape as :data:`points.api.reads._BALANCE` (which SQLite uses); the
integration tests run both through the same expectations.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import URL

from points.api.reads import BalanceView
from points.ledger.model import BANK

__all__ = ["PgReader"]

MAX_IDLE_S: Final = 300.0
"""A connection the pool has not needed for this long (beyond the first) is closed."""
MAX_LIFETIME_S: Final = 1800.0
"""A connection is replaced after this long (the pool spreads the replacements out)."""
CHECK_IDLE_S: Final = 5.0
"""A connection idle longer than this is pinged before a request gets it."""

BALANCE_SQL = """
SELECT a.kind, b.balance, coalesce(soon.d30, 0), coalesce(soon.d90, 0)
FROM ledger_accounts a
JOIN ledger_balances b ON b.account_id = a.id
LEFT JOIN LATERAL (
    SELECT sum(l.remaining) FILTER (WHERE l.expires_at <= %(soon30)s) AS d30,
           sum(l.remaining) AS d90
    FROM ledger_lots l
    WHERE l.account_id = a.id AND a.kind = 'wallet' AND l.remaining > 0
      AND l.expires_at <= %(soon90)s
) soon ON true
WHERE a.program = %(program)s AND a.owner = %(customer)s
  AND a.kind IN ('wallet', 'held', 'receivable')
"""


class PgReader:
    """Up to ``size`` async connections in a ``psycopg_pool.AsyncConnectionPool``, opened on
    first use (on the serving loop).

    The pool replaces what broke or aged: a connection idle for ``max_idle_s`` beyond the
    first is closed, one older than ``max_lifetime_s`` is replaced when it comes back, and one
    that sat idle longer than ``check_idle_s`` is pinged before it is handed out (a server
    restart or a proxy's idle cut leaves such connections dead). A connection used moments ago
    is not pinged: that would double the round trips of every balance read. A connection left
    in an unknown state (a failed or cancelled query) is discarded when it comes back.
    """

    def __init__(self, url: URL, *, size: int, statement_timeout_ms: int = 5000,
                 timeout_s: float = 5.0, max_idle_s: float = MAX_IDLE_S,
                 max_lifetime_s: float = MAX_LIFETIME_S,
                 check_idle_s: float = CHECK_IDLE_S) -> None:
        self._timeout_ms = statement_timeout_ms
        self._check_idle_s = check_idle_s
        # when each connection was last handed back after a query that succeeded
        self._last_ok: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary())
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            url.set(drivername="postgresql").render_as_string(hide_password=False),
            kwargs={"autocommit": True},  # one round trip a read: no BEGIN/ROLLBACK
            min_size=1,
            max_size=size,
            open=False,
            configure=self._configure,
            check=self._check,
            timeout=timeout_s,
            max_idle=max_idle_s,
            max_lifetime=max_lifetime_s,
            name="points-api-balance",
        )
        self._size = size
        # Requests queue here rather than in the pool: a request waiting in the pool costs a
        # condition and a timer (measured: a fifth more CPU per read at 50 connections), so
        # the pool is only asked when it has a connection free (or can open one).
        self._slots: asyncio.Semaphore | None = None
        self._opened = False

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f"SET statement_timeout = {int(self._timeout_ms)}")

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        last_ok = self._last_ok.get(conn)
        if last_ok is None or time.monotonic() - last_ok > self._check_idle_s:
            await AsyncConnectionPool.check_connection(conn)  # raises if it is gone

    async def fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self._slots is None:  # on the serving loop, not at construction
            self._slots = asyncio.Semaphore(self._size)
        if not self._opened:
            await self._pool.open()  # idempotent: concurrent first requests all wait here
            self._opened = True
        async with self._slots:
            # getconn/putconn, not pool.connection(): that also enters the connection's
            # context, a COMMIT check under the connection's lock on every read
            conn = await self._pool.getconn()
            try:
                cursor = await conn.execute(sql, params)
                rows = await cursor.fetchall()
                self._last_ok[conn] = time.monotonic()
            finally:
                await self._pool.putconn(conn)  # one left mid-query is closed, not reused
            return rows

    async def balance(self, customer_id: str, *, now: datetime) -> BalanceView:
        rows = await self.fetch(BALANCE_SQL, {
            "program": BANK,
            "customer": customer_id,
            "soon30": now + timedelta(days=30),
            "soon90": now + timedelta(days=90),
        })
        by_kind = {str(k): (int(v), int(s30), int(s90)) for k, v, s30, s90 in rows}
        wallet = by_kind.get("wallet", (0, 0, 0))
        return BalanceView(
            available=wallet[0],
            held=by_kind.get("held", (0, 0, 0))[0],
            debt=-by_kind.get("receivable", (0, 0, 0))[0],
            expiring_30d=wallet[1],
            expiring_90d=wallet[2],
        )

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
