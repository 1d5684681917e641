"""``GET /v1/me/balance`` on PostgreSQL without the framework's per-request machinery.

The balance is what the app asks for on every screen. Profiled under the benchmark, FastAPI's
routing, dependency solving, exception and exit-stack middlewares and response classes were
about half of the API's CPU per balance request. This ASGI middleware answers exactly that
route (GET, PostgreSQL) with the same pieces the FastAPI route uses — the token verifier, the
rate limiter, :class:`points.api.pgread.PgReader`, :func:`points.api.views.balance_body` and
:func:`points.api.problems.error_response` — so both answer identically; everything else
(and the whole API on SQLite) goes through FastAPI. The FastAPI route stays the documented
one (OpenAPI) and the reference the tests compare against.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from points.api import views
from points.api.problems import error_response
from points.errors import PointsError

if TYPE_CHECKING:
    from points.api.app import ApiContext

__all__ = ["ACTIVITY_PATH", "BALANCE_PATH", "ActivityFastPath", "BalanceFastPath"]

BALANCE_PATH = "/v1/me/balance"
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


async def _send_problem(send: Send, exc: PointsError) -> None:
    refused = error_response(exc)
    await send({"type": "http.response.start", "status": refused.status_code,
                "headers": refused.raw_headers})
    await send({"type": "http.response.body", "body": bytes(refused.body)})


async def _send_json(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BalanceFastPath:
    def __init__(self, app: ASGIApp, ctx: ApiContext, route: Any) -> None:
        self.app = app
        self.ctx = ctx
        self.route = route  # for the metrics label, as if the router had matched it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        if (
            ctx.pg is None
            or scope["type"] != "http"
            or scope["path"] != BALANCE_PATH
            or scope["method"] != "GET"
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        authorization = _authorization(scope)
        try:
            customer_id = ctx.verifier.customer_id(authorization)
            ctx.limiter.take(customer_id)
            now = ctx.clock()
            view = await ctx.pg.balance(customer_id, now=now)
        except PointsError as exc:
            await _send_problem(send, exc)
            return
        body = json.dumps(views.balance_body(customer_id, view, now),
                          separators=(",", ":")).encode()
        await _send_json(send, body)


ACTIVITY_PATH = "/v1/me/activity"
_DIGITS = frozenset("0123456789")


class ActivityFastPath:
    """``GET /v1/me/activity`` on PostgreSQL, past the framework, like the balance above.

    Only well-formed queries are answered here: at most one ``limit`` (plain digits, within
    the page maximum) and one ``cursor`` (a cursor this API issued), nothing else. Anything
    else — a bad limit or cursor, an unknown or repeated parameter — goes on to the FastAPI
    route, so every refusal is the framework's own problem response, unchanged. The page
    is the route's too (:meth:`points.api.pgread.PgReader.activity_page`,
    :func:`points.api.views.activity_body`, :func:`points.api.views.activity_json`).
    """

    def __init__(self, app: ASGIApp, ctx: ApiContext, route: Any) -> None:
        self.app = app
        self.ctx = ctx
        self.route = route
        self.limit_max = ctx.api.activity_page_max

    def _query(self, raw: bytes) -> tuple[int, int | None] | None:
        """(limit, entry id before) of a well-formed query string, else None."""
        limit = 20
        before = None
        if not raw:
            return limit, before
        seen = set()
        for part in raw.decode("latin-1").split("&"):
            name, sep, value = part.partition("=")
            if not sep or name in seen:
                return None
            seen.add(name)
            if name == "limit":
                if not value or len(value) > 6 or not _DIGITS.issuperset(value):
                    return None
                limit = int(value)
                if not 1 <= limit <= self.limit_max:
                    return None
            elif name == "cursor":
                if not 1 <= len(value) <= 64 or "%" in value or "+" in value:
                    return None
                try:
                    before = views.decode_cursor(value)
                except PointsError:
                    return None
            else:
                return None
        return limit, before

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        if (
            ctx.pg is None
            or scope["type"] != "http"
            or scope["path"] != ACTIVITY_PATH
            or scope["method"] != "GET"
        ):
            await self.app(scope, receive, send)
            return
        query = self._query(scope["query_string"])
        if query is None:
            await self.app(scope, receive, send)
            return
        limit, before = query
        scope["route"] = self.route
        authorization = _authorization(scope)
        try:
            customer_id = ctx.verifier.customer_id(authorization)
            ctx.limiter.take(customer_id)
            page, more, records, targets = await ctx.pg.activity_page(
                customer_id, before_entry_id=before, limit=limit)
        except PointsError as exc:
            await _send_problem(send, exc)
            return
        body = views.activity_json(views.activity_body(ctx.ruleset, page, more, records,
                                                       targets))
        await _send_json(send, body)
