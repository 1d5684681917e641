"""Read-side numbers for the operations dashboard (``/ops``), as plain dicts.

Every query is SQLAlchemy Core (or one ``text`` per dialect where JSON functions differ) and
runs on SQLite and PostgreSQL. Nothing here writes. The expensive parts are cached:

- :class:`VerifyCache` runs :func:`points.ledger.verify` in a background thread at most every
  ``min_interval_s`` and keeps the last report; a request waits for it only briefly.
- :class:`LagCache` asks a :class:`ConsumerLagReader` (Kafka, behind a port) for the worker
  group's lag in a background task; when the broker cannot be reached it says ``unavailable``.

Costs (measured on PostgreSQL 15 and SQLite, 120k earning records / 120k inbox rows; see
``docs/operations-dashboard.md``): points by rule is one JSON aggregate over every earning
record, so the route caches it for ``SLOW_TTL_S``; the other queries are group-bys over
small tables or a range of the inbox.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import Connection, Engine, Integer, case, cast, func, select, text

from points.dead_letters import dead_letters
from points.exchange.tables import referrals, swaps
from points.inbox import inbound_events
from points.ledger.verify import VerifyReport, verify

__all__ = [
    "REFERRAL_STATES",
    "SWAP_STATES",
    "ConsumerLagReader",
    "LagCache",
    "VerifyCache",
    "dlq_by_reason",
    "events_per_second",
    "points_by_rule",
    "referral_funnel",
    "swap_funnel",
    "verify_view",
]

# The saga's states in funnel order (points.swap_saga.SwapStatus), then the referrals'.
SWAP_STATES: Final = ("requested", "pending", "completed", "rejected", "expired")
REFERRAL_STATES: Final = (
    "invited", "signed_up", "qualified", "rewarded", "clawed_back", "refused",
)
VIOLATIONS_SHOWN: Final = 20


def _time_param(conn: Connection, value: datetime) -> Any:
    # SQLite keeps UTC wall time as text; compare in the same form (as points.ledger.queries).
    if conn.dialect.name == "sqlite":
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def events_per_second(
    conn: Connection, *, now: datetime, minutes: int = 15, bucket_s: int = 10
) -> dict[str, Any]:
    """Events accepted into the inbox per second, by topic, in ``bucket_s`` buckets over the
    last ``minutes`` (from ``inbound_events.received_at``, the database's clock at commit).

    ``series[topic]`` has one rate per bucket, oldest first, zeros included, so every topic's
    line spans the same time axis (``bucket_starts``, epoch seconds).
    """
    if bucket_s <= 0 or minutes <= 0:
        raise ValueError("minutes and bucket_s must be positive")
    end = int(now.timestamp()) // bucket_s * bucket_s + bucket_s
    start = end - minutes * 60 // bucket_s * bucket_s
    since = datetime.fromtimestamp(start, UTC)
    received = inbound_events.c.received_at
    bucket: Any
    if conn.dialect.name == "postgresql":
        bucket = func.floor((func.extract("epoch", received) - start) / bucket_s)
    else:  # integer division of integers
        bucket = (cast(func.strftime("%s", received), Integer) - start) / bucket_s
    rows = conn.execute(
        select(inbound_events.c.topic, bucket.label("b"), func.count())
        .where(received >= _time_param(conn, since))
        .group_by(inbound_events.c.topic, bucket)
    ).all()
    buckets = (end - start) // bucket_s
    series: dict[str, list[float]] = {}
    totals: dict[str, int] = {}
    for topic, index, count in rows:
        i = int(index)
        if not 0 <= i < buckets:
            continue  # a clock ahead of ours; not shown
        line = series.setdefault(str(topic), [0.0] * buckets)
        # The current bucket has only lasted since its start: divide by what has elapsed.
        seconds = min(bucket_s, max(1.0, now.timestamp() - (start + i * bucket_s)))
        line[i] = round(int(count) / seconds, 3)
        totals[str(topic)] = totals.get(str(topic), 0) + int(count)
    return {
        "bucket_s": bucket_s,
        "minutes": minutes,
        "bucket_starts": [start + i * bucket_s for i in range(buckets)],
        "series": dict(sorted(series.items())),
        "totals": dict(sorted(totals.items())),
    }


# One aggregate over the earning records' lines, in the database (only the sums come back).
# Points are gross: what the rules awarded; clawbacks are the ledger's business.
_LINES_SQL: Final = {
    "postgresql": """
        SELECT l.rule_id, l.kind, sum(l.points) AS points
          FROM earning_records r
         CROSS JOIN LATERAL json_to_recordset(r.record->'lines')
               AS l(rule_id text, kind text, points bigint)
         {where}
         GROUP BY 1, 2
    """,
    "sqlite": """
        SELECT json_extract(l.value, '$.rule_id') AS rule_id,
               json_extract(l.value, '$.kind') AS kind,
               sum(json_extract(l.value, '$.points')) AS points
          FROM earning_records r, json_each(r.record, '$.lines') l
         {where}
         GROUP BY 1, 2
    """,
}


def points_by_rule(conn: Connection, *, since: datetime | None = None) -> dict[str, Any]:
    """Points the rules issued, by rule id and by campaign (the ``campaign`` lines), largest
    first: over every earning record, or those written since ``since`` (``updated_at``: the
    purchase, or its latest refund).

    Cost: one JSON parse per record scanned (PostgreSQL 15: ~0.7 s per 100k records), so the
    dashboard asks for a window and refreshes it in the background.
    """
    sql = _LINES_SQL.get(conn.dialect.name)
    if sql is None:  # pragma: no cover
        raise NotImplementedError(f"unsupported dialect {conn.dialect.name}")
    params: dict[str, Any] = {}
    where = ""
    if since is not None:
        where = "WHERE r.updated_at >= :since"
        params["since"] = _time_param(conn, since)
    by_rule: dict[str, int] = {}
    by_campaign: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for rule_id, kind, points in conn.execute(text(sql.format(where=where)), params):
        rule, value = str(rule_id), int(points or 0)
        by_rule[rule] = by_rule.get(rule, 0) + value
        kinds[rule] = str(kind)
        if kind == "campaign":
            by_campaign[rule] = by_campaign.get(rule, 0) + value

    def ranked(counts: dict[str, int]) -> list[dict[str, Any]]:
        return [
            {"id": k, "kind": kinds[k], "points": v}
            for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    return {
        "since": since.isoformat() if since is not None else None,
        "by_rule": ranked(by_rule),
        "by_campaign": ranked(by_campaign),
        "total": sum(by_rule.values()),
    }


def swap_funnel(conn: Connection) -> dict[str, Any]:
    """Outbound swaps by partner and state (every state listed, zeros included)."""
    partners: dict[str, dict[str, int]] = {}
    for partner, status, count in conn.execute(
        select(swaps.c.partner_id, swaps.c.status, func.count())
        .group_by(swaps.c.partner_id, swaps.c.status)
    ):
        states = partners.setdefault(str(partner), dict.fromkeys(SWAP_STATES, 0))
        states[str(status)] = states.get(str(status), 0) + int(count)
    return {"states": list(SWAP_STATES), "partners": dict(sorted(partners.items()))}


def referral_funnel(conn: Connection) -> dict[str, Any]:
    """Referrals by their current status (every status listed, zeros included)."""
    counts = dict.fromkeys(REFERRAL_STATES, 0)
    for status, count in conn.execute(
        select(referrals.c.status, func.count()).group_by(referrals.c.status)
    ):
        counts[str(status)] = counts.get(str(status), 0) + int(count)
    return {"states": list(counts), "counts": counts, "total": sum(counts.values())}


def dlq_by_reason(conn: Connection, *, now: datetime, recent_hours: int = 24) -> dict[str, Any]:
    """Dead letters by reason code: all time, and in the last ``recent_hours``."""
    since = _time_param(conn, now - timedelta(hours=recent_hours))
    recent = func.sum(case((dead_letters.c.created_at >= since, 1), else_=0))
    rows = conn.execute(
        select(dead_letters.c.reason_code, func.count(), recent)
        .group_by(dead_letters.c.reason_code)
        .order_by(func.count().desc(), dead_letters.c.reason_code)
    ).all()
    return {
        "recent_hours": recent_hours,
        "reasons": [
            {"reason_code": str(code), "count": int(count), "recent": int(last or 0)}
            for code, count, last in rows
        ],
        "total": sum(int(count) for _, count, _ in rows),
    }


def verify_view(report: VerifyReport) -> dict[str, Any]:
    """A verify report as the dashboard shows it."""
    return {
        "ok": report.ok,
        "entries": report.entries,
        "legs": report.legs,
        "accounts": report.accounts,
        "lots": report.lots,
        "holds": report.holds,
        "violation_count": len(report.violations),
        "violations": [
            {"check": v.check, "subject": v.subject, "detail": v.detail}
            for v in report.violations[:VIOLATIONS_SHOWN]
        ],
    }


def _verify_snapshot(engine: Engine, timeout_s: float) -> VerifyReport:
    """``verify`` on one snapshot: REPEATABLE READ on PostgreSQL, a read transaction on
    SQLite; a statement timeout of its own (the API's connections allow 5 s)."""
    if engine.dialect.name == "postgresql":
        with engine.execution_options(isolation_level="REPEATABLE READ").connect() as conn, \
                conn.begin():
            conn.execute(text(f"SET LOCAL statement_timeout = '{int(timeout_s * 1000)}ms'"))
            return verify(conn)
    with engine.connect() as conn, conn.begin():
        return verify(conn)


@dataclass
class _VerifyState:
    result: dict[str, Any] | None = None
    running_since: float | None = None
    finished: float | None = None


class VerifyCache:
    """Runs ``verify`` in a daemon thread at most every ``min_interval_s`` seconds and keeps
    the last outcome. :meth:`get` starts a run when the last one is stale and answers with the
    previous result meanwhile; only while there is none yet does it wait (at most ``wait_s``,
    then ``running``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        min_interval_s: float = 30.0,
        timeout_s: float = 300.0,
        run: Callable[[Engine, float], VerifyReport] = _verify_snapshot,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._interval = min_interval_s
        self._timeout = timeout_s
        self._run = run
        self._clock = clock
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._state = _VerifyState()
        self.runs = 0

    def _work(self) -> None:
        started = self._clock()
        checked_at = datetime.now(UTC).isoformat()
        try:
            report = self._run(self._engine, self._timeout)
            result: dict[str, Any] = {"status": "ok" if report.ok else "violations",
                                      **verify_view(report)}
        except Exception as exc:  # shown on the page; the next run may succeed
            result = {"status": "error", "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result["checked_at"] = checked_at
        result["duration_s"] = round(self._clock() - started, 3)
        with self._lock:
            self._state = _VerifyState(result=result, running_since=None, finished=self._clock())
            self.runs += 1
            self._done.notify_all()

    def get(self, wait_s: float = 0.5) -> dict[str, Any]:
        """The last result (``running`` true while a newer one is being computed); never
        blocks longer than ``wait_s``."""
        with self._lock:
            state = self._state
            now = self._clock()
            fresh = state.finished is not None and now - state.finished < self._interval
            if not fresh and state.running_since is None:
                state.running_since = now
                threading.Thread(target=self._work, name="ops-verify", daemon=True).start()
            if state.result is None and wait_s > 0:  # only the very first answer waits
                self._done.wait_for(lambda: self._state.running_since is None, timeout=wait_s)
            state = self._state
            if state.result is None:
                return {"status": "running", "ok": None, "checked_at": None}
            return {**state.result, "running": state.running_since is not None}


class ConsumerLagReader(Protocol):
    """The port the dashboard reads a consumer group's lag through, handed to it at start-up
    (``points/`` knows nothing of Kafka; the Kafka reader is
    :class:`streams.consumer_lag.KafkaConsumerLag`)."""

    async def lag(self, group_id: str, *, timeout_s: float) -> dict[str, Any]:
        """``{"status": "ok", "group_id", "topics": {topic: {"lag", "end", "committed",
        "partitions"}}, "total_lag"}``; raises when the broker cannot be reached in time."""
        ...


class LagCache:
    """The last answer of ``reader`` for ``group_id``, refreshed in a background task at most
    every ``min_interval_s``; ``unavailable`` (with the reason) when Kafka does not answer."""

    def __init__(
        self,
        reader: ConsumerLagReader,
        group_id: str,
        *,
        min_interval_s: float = 5.0,
        timeout_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._group = group_id
        self._interval = min_interval_s
        self._timeout = timeout_s
        self._clock = clock
        self._result: dict[str, Any] | None = None
        self._finished: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def _refresh(self) -> None:
        try:
            result = await self._reader.lag(self._group, timeout_s=self._timeout)
        except Exception as exc:
            result = {"status": "unavailable", "group_id": self._group, "topics": {},
                      "error": f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__}
        result["checked_at"] = datetime.now(UTC).isoformat()
        self._result = result
        self._finished = self._clock()

    async def get(self, wait_s: float = 0.5) -> dict[str, Any]:
        """The last answer; starts a refresh when stale. Only the first call waits (at most
        ``wait_s``, then ``pending``)."""
        stale = self._finished is None or self._clock() - self._finished >= self._interval
        if stale and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._refresh())
        if self._result is None and self._task is not None and wait_s > 0:
            await asyncio.wait({self._task}, timeout=wait_s)
        if self._result is None:
            return {"status": "pending", "group_id": self._group, "topics": {}}
        return self._result

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
