"""The hot reads on PostgreSQL (balance, activity): async psycopg on the event loop, no thread
hand-off.

Measured on the benchmark (2 cores, 50 connections): running the balance read in a worker
thread through the SQLAlchemy pool cost about a third of the API's CPU per request in thread
hand-offs alone (anyio ``run_sync``, queue and condition wake-ups). Here the query runs on
the event loop over a ``psycopg_pool`` pool of async connections in autocommit mode (one round
trip, no BEGIN/ROLLBACK), and psycopg prepares the statement after its first few runs.

The SQL is the same shape as :data:`points.api.reads._BALANCE` (which SQLite uses); the
integration tests run both through the same expectations.

The activity page is ONE statement (:data:`ACTIVITY_SQL`) where the portable path
(:func:`points.api.reads.activity_page` and the explanation reads, SQLite) takes five: the
customer's accounts, the page's entry ids, their legs, their headers, the earning records
(and the clawed-back entries). The page's entry ids are read from the legs indexes by
``(account, entry)`` (migration 0013), backwards from the cursor, at most one page per account
side; what was measured is in docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
import psycopg
from psycopg.adapt import Loader
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import URL

from points.api.reads import BalanceView
from points.ledger.model import BANK

__all__ = ["ACTIVITY_SQL", "NO_CURSOR", "PgReader"]

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

NO_CURSOR: Final = 2**63 - 1
"""``before`` for the first page: above every entry id (one prepared statement for both)."""

# Committed entries only: rejected requests have a header but no legs, and the page is read
# from legs. Entries are append-only, so a cursor (an entry id) pages the same lines forever.
#
# ``page``: the newest ``n`` entries (the page and one more, which says whether older ones
# exist) read backwards from each of the customer's account sides, index only. An entry with
# two legs on one side (a partly posted hold: posted and returned) is counted once per side
# (DISTINCT), or it would take two of the side's ``n`` places and push an older line off.
# ``deltas``: every leg of the customer's accounts from the oldest of those entries up to the
# cursor (each one belongs to a page entry), read along the same indexes in two range scans,
# summed by entry and account kind as bigint (a bare sum of bigint is numeric: a Decimal per
# value in the API); half the buffers of one lookup per entry by primary key. The earning
# record comes back whole and the API parses it (orjson): ``->`` on a ``json`` value re-parses
# it in the server each time.
ACTIVITY_SQL = """
WITH acct AS MATERIALIZED (
    SELECT id, kind FROM ledger_accounts
    WHERE program = %(program)s AND owner = %(customer)s
      AND kind IN ('wallet', 'held', 'receivable')
), page AS MATERIALIZED (
    SELECT DISTINCT side.entry_id
    FROM acct a
    CROSS JOIN LATERAL (
        (SELECT DISTINCT l.entry_id FROM ledger_legs l
          WHERE l.debit_account_id = a.id AND l.entry_id < %(before)s
          ORDER BY l.entry_id DESC LIMIT %(n)s)
        UNION ALL
        (SELECT DISTINCT l.entry_id FROM ledger_legs l
          WHERE l.credit_account_id = a.id AND l.entry_id < %(before)s
          ORDER BY l.entry_id DESC LIMIT %(n)s)
    ) side
    ORDER BY side.entry_id DESC
    LIMIT %(n)s
), deltas AS (
    SELECT m.entry_id,
           coalesce(sum(m.amount) FILTER (WHERE m.kind = 'wallet'), 0)::bigint AS wallet,
           coalesce(sum(m.amount) FILTER (WHERE m.kind = 'held'), 0)::bigint AS held,
           coalesce(sum(m.amount) FILTER (WHERE m.kind = 'receivable'), 0)::bigint
             AS receivable
    FROM acct a
    CROSS JOIN LATERAL (
        SELECT l.entry_id, a.kind, -l.amount AS amount FROM ledger_legs l
         WHERE l.debit_account_id = a.id AND l.entry_id < %(before)s
           AND l.entry_id >= (SELECT min(entry_id) FROM page)
        UNION ALL
        SELECT l.entry_id, a.kind, l.amount FROM ledger_legs l
         WHERE l.credit_account_id = a.id AND l.entry_id < %(before)s
           AND l.entry_id >= (SELECT min(entry_id) FROM page)
    ) m
    GROUP BY m.entry_id
)
SELECT e.id, e.kind, e.created_at, e.reason, e.target_entry_id,
       d.wallet, d.held, d.receivable,
       r.record,
       t.reason ->> 'source_event'
FROM deltas d
JOIN ledger_entries e ON e.id = d.entry_id
LEFT JOIN earning_records r
       ON e.kind = 'earn' AND r.event_id = e.reason ->> 'source_event'
      AND r.customer_id = %(customer)s
LEFT JOIN ledger_entries t ON e.kind = 'clawback' AND t.id = e.target_entry_id
ORDER BY e.id DESC
"""
"""The columns are :data:`points.api.views.ActivityRow`'s, in its order."""


class _OrjsonJsonLoader(Loader):
    """``json`` values parsed by orjson straight from psycopg's buffer, with no Python frame
    around the call: psycopg's own loader (``set_json_loads``) copies each value to bytes in
    one first. An activity page parses up to two values a line; measured on the benchmark's
    pages, loading the rows took 40 µs with this loader and 51 µs with that one."""

    load = staticmethod(orjson.loads)  # type: ignore[assignment]  # takes the memoryview too


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
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f"SET statement_timeout = {int(self._timeout_ms)}")
        # Timestamps come back in UTC (the same instants): psycopg then tags them with
        # datetime.UTC instead of converting each through a ZoneInfo (7 µs an activity page).
        await conn.execute("SET TimeZone = 'UTC'")
        conn.adapters.register_loader("json", _OrjsonJsonLoader)

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
            self._loop = asyncio.get_running_loop()
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

    async def activity_page(
        self, customer_id: str, *, before_entry_id: int | None, limit: int
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """The page as :func:`points.api.views.activity_body` takes it, in one round trip:
        its lines (:data:`points.api.views.ActivityRow`, newest first, strictly before the
        cursor) and whether older entries exist. The rows go to the body as psycopg returns
        them: no object per line (py-spy on the benchmark: building a Reason and an
        ActivityEntry per line, only to read them back, was a sixth of the API's time)."""
        rows = await self.fetch(ACTIVITY_SQL, {
            "program": BANK,
            "customer": customer_id,
            "before": NO_CURSOR if before_entry_id is None else before_entry_id,
            "n": limit + 1,
        })
        return rows[:limit], len(rows) > limit

    async def close(self) -> None:
        if not self._opened:
            return
        if self._loop is not asyncio.get_running_loop():
            # Opened by another event loop serving this app (a test harness running one app
            # on two loops, one after the other): the pool's tasks belong to that loop, whose
            # own shutdown closes it; closing it from here would fail.
            return
        await self._pool.close()
