"""The operations dashboard: ``GET /ops`` (one static HTML page, charts drawn by the vendored
Chart.js) and ``GET /ops/api/summary`` (the numbers, JSON), behind an operator token.

Access: ``POINTS_API__OPS_TOKEN`` (at least 24 characters) sent as ``Authorization: Bearer
<token>``, or the session cookie that ``GET /ops/login?token=<token>`` sets (HttpOnly,
SameSite=Strict, path ``/ops``): a random id per login, stored hashed in ``api_ops_sessions``
(:mod:`points.api.ops_sessions`), expiring when idle and at an absolute limit, revoked by
``/ops/logout``. Customers' JWTs never match it.
Without the setting every ``/ops`` route answers 503 ``not_configured``. The routes are left
out of the customer API's OpenAPI document. See docs/operations-dashboard.md.

The summary never fails as a whole: each section that cannot be computed says so
(``{"status": "error"}``), Kafka lag says ``unavailable`` when the broker does not answer,
and ledger ``verify`` runs in a background thread (:class:`points.ops_metrics.VerifyCache`).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Connection, Engine
from starlette.responses import FileResponse, RedirectResponse, Response

from points import ops_metrics
from points.api.errors import NotConfigured, Unauthenticated
from points.api.ops_sessions import OpsSessions
from points.api.settings import DashboardSettings
from points.gifts.funnel import fission_funnel
from points.marketing.profiles import stage_counts
from points.marketing.reports import campaign_reports_json
from points.rules import RuleSet
from points.rules.backtest import PointCost
from points.rules.plan import plan_of
from points.settings import Settings

__all__ = ["COOKIE", "ops_router"]

log = logging.getLogger(__name__)

STATIC: Final = Path(__file__).resolve().parent / "static"
COOKIE: Final = "points_ops"
# Longer than any token an operator would paste: refused before comparing, as any wrong one.
_TOKEN_MAX_CHARS: Final = 4096
_CHART_JS: Final = "chart.umd.min.js"


class OpsUnauthenticated(Unauthenticated):
    def __init__(self) -> None:
        super().__init__(
            "the operations dashboard needs the operator token: open /ops/login?token=... "
            "or send Authorization: Bearer <operator token>"
        )
        self.headers = {"WWW-Authenticate": 'Bearer realm="points-ops"'}


class _Cached:
    """One value computed at most every ``ttl_s`` and shared by concurrent callers. With
    ``background``, a stale value is served while a thread computes the next one (only the
    very first call waits)."""

    def __init__(self, ttl_s: float, compute: Callable[[], dict[str, Any]], *,
                 background: bool = False) -> None:
        self._ttl = ttl_s
        self._compute = compute
        self._background = background
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._at = 0.0
        self._refreshing = False

    def _refresh(self) -> None:
        try:
            value = self._compute()
        finally:
            with self._lock:
                self._refreshing = False
        with self._lock:
            self._value, self._at = value, time.monotonic()

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._value is not None and time.monotonic() - self._at < self._ttl:
                return self._value
            if self._value is not None and self._background:
                if not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh, name="ops-refresh",
                                     daemon=True).start()
                return self._value
            self._value = self._compute()
            self._at = time.monotonic()
            return self._value


def _section(engine: Engine, name: str, fn: Callable[[Connection], dict[str, Any]]
             ) -> Callable[[], dict[str, Any]]:
    def compute() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            with engine.connect() as conn:
                body = {"status": "ok", **fn(conn)}
        except Exception as exc:  # one broken section never fails the page
            log.warning("ops summary: %s failed: %s", name, exc)
            body = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:500]}
        body["query_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return body

    return compute


def ops_router(
    engine: Engine,
    settings: Settings,
    ops: DashboardSettings,
    *,
    lag_reader: ops_metrics.ConsumerLagReader,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ruleset: RuleSet | None = None,
) -> APIRouter:
    """The ``/ops`` routes over ``engine`` (the API's read engine), configured by ``ops``
    (the API's settings); ``lag_reader`` reads the lag of the worker's consumer group (named
    in ``settings``); ``clock`` times the login sessions."""
    token = ops.ops_token.get_secret_value().encode() if ops.ops_token else None
    sessions = OpsSessions(engine, idle_s=ops.ops_session_idle_s,
                           max_s=ops.ops_session_max_s, clock=clock)
    verify_cache = ops_metrics.VerifyCache(
        engine, min_interval_s=ops.ops_verify_interval_s, timeout_s=ops.ops_verify_timeout_s
    )
    lag_cache = ops_metrics.LagCache(
        lag_reader, settings.worker.app_id,
        min_interval_s=ops.ops_lag_interval_s, timeout_s=ops.ops_lag_timeout_s,
    )
    limiter = anyio.CapacityLimiter(2)  # the dashboard never takes the customers' threads
    minutes, bucket_s = 10, 5

    def events(conn: Connection) -> dict[str, Any]:
        return ops_metrics.events_per_second(
            conn, now=datetime.now(UTC), minutes=minutes, bucket_s=bucket_s
        )

    def points(conn: Connection) -> dict[str, Any]:
        hours = ops.ops_points_window_h
        since = datetime.now(UTC) - timedelta(hours=hours) if hours else None
        return ops_metrics.points_by_rule(conn, since=since)

    sections = {
        "events": _Cached(ops.ops_fast_ttl_s, _section(engine, "events", events)),
        "points": _Cached(ops.ops_slow_ttl_s, _section(engine, "points", points),
                          background=True),
        "swaps": _Cached(ops.ops_fast_ttl_s,
                         _section(engine, "swaps", ops_metrics.swap_funnel)),
        "referrals": _Cached(ops.ops_fast_ttl_s,
                             _section(engine, "referrals", ops_metrics.referral_funnel)),
        "dlq": _Cached(ops.ops_fast_ttl_s, _section(
            engine, "dlq", lambda c: ops_metrics.dlq_by_reason(c, now=datetime.now(UTC)))),
        "packets": _Cached(ops.ops_fast_ttl_s, _section(engine, "packets", fission_funnel)),
    }
    if ruleset is not None:  # campaign uplift (docs/marketing.md): one pass over the records
        rules = ruleset
        sections["campaigns"] = _Cached(ops.ops_slow_ttl_s, _section(
            engine, "campaigns", lambda c: campaign_reports_json(c, rules, PointCost().of)),
            background=True)
        # customers per lifecycle stage (docs/rules.md): two passes over the rule states
        thresholds = plan_of(rules).lifecycle
        sections["lifecycle"] = _Cached(ops.ops_slow_ttl_s, _section(
            engine, "lifecycle", lambda c: stage_counts(c, thresholds)), background=True)

    def database_sections() -> dict[str, Any]:
        body = {name: cached.get() for name, cached in sections.items()}
        body["verify"] = verify_cache.get(wait_s=0.2)
        return body

    def operator_token() -> bytes:
        if token is None:
            raise NotConfigured("the operations dashboard is off: set POINTS_API__OPS_TOKEN")
        return token

    def is_token(candidate: str) -> bool:
        expected = operator_token()
        return len(candidate) <= _TOKEN_MAX_CHARS and hmac.compare_digest(
            candidate.encode(), expected)

    def authorized(request: Request) -> None:
        # A plain def: FastAPI runs it in a worker thread, where the session lookup may block.
        operator_token()
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and is_token(credentials.strip()):
            return
        cookie = request.cookies.get(COOKIE, "")
        if cookie and sessions.is_open(cookie):
            return
        raise OpsUnauthenticated()

    operator = Depends(authorized)
    router = APIRouter(prefix="/ops", tags=["operations dashboard"], include_in_schema=False)

    @router.get("/login")
    async def login(
        request: Request, token_param: Annotated[str, Query(alias="token")] = ""
    ) -> Response:
        # Any wrong token, however long, is the same 401 (no length check that could say 422).
        if not is_token(token_param):
            raise OpsUnauthenticated()
        session_id = await anyio.to_thread.run_sync(sessions.start, limiter=limiter)
        response = RedirectResponse("/ops", status_code=303)
        response.set_cookie(
            COOKIE, session_id, max_age=sessions.cookie_max_age_s, path="/ops", httponly=True,
            samesite="strict", secure=ops.ops_cookie_secure or request.url.scheme == "https",
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @router.get("/logout")
    async def logout(request: Request) -> Response:
        """Revokes the session on the server (the cookie is dead even if a copy was kept)."""
        session_id = request.cookies.get(COOKIE, "")
        if session_id:
            await anyio.to_thread.run_sync(sessions.end, session_id, limiter=limiter)
        response = RedirectResponse("/ops/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ops", httponly=True, samesite="strict")
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get("", dependencies=[operator])
    async def page() -> Response:
        return FileResponse(
            STATIC / "ops.html", media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                     "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                     "Content-Security-Policy": "default-src 'self'; script-src 'self' "
                     "'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                     "connect-src 'self'; frame-ancestors 'none'"},
        )

    @router.get("/static/" + _CHART_JS)
    async def chart_js() -> Response:
        # A public library (MIT, see static/chart.js.LICENSE.md); no token needed.
        return FileResponse(STATIC / _CHART_JS, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @router.get("/api/summary", dependencies=[operator])
    async def summary() -> Response:
        started = time.perf_counter()
        lag = await lag_cache.get(wait_s=0.3)
        body: dict[str, Any] = {
            "generated_at": datetime.now(UTC).isoformat(),
            "lag": lag,
            **await anyio.to_thread.run_sync(database_sections, limiter=limiter),
        }
        body["took_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return Response(json.dumps(body, separators=(",", ":")), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    return router
