"""``GET /v1/me/balance`` (and activity, and the swap POSTs) on PostgreSQL without the
framework's per-request machinery.

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
import re
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from points.api import views
from points.api.exchange_once import QUOTE_ROUTE, SWAP_ROUTE
from points.api.idempotency import KEY_PATTERN
from points.api.problems import error_response
from points.errors import PointsError

if TYPE_CHECKING:
    from points.api.app import ApiContext

__all__ = [
    "ACTIVITY_PATH",
    "BALANCE_PATH",
    "QUOTE_PATH",
    "SWAP_PATH",
    "ActivityFastPath",
    "BalanceFastPath",
    "ExchangeFastPath",
]

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
            rows, more = await ctx.pg.activity_page(customer_id, before_entry_id=before,
                                                    limit=limit)
        except PointsError as exc:
            await _send_problem(send, exc)
            return
        body = views.activity_json(views.activity_body(ctx.ruleset, rows, more))
        await _send_json(send, body)


QUOTE_PATH = QUOTE_ROUTE
SWAP_PATH = SWAP_ROUTE
_KEY = re.compile(KEY_PATTERN)
_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_QUOTE_ID = re.compile(r"^[\x21-\x7e]+$")
_BODY_MAX = 4096
"""A swap POST's body is tens of bytes; a larger one goes to the framework (and its limit)."""


def _quote_request(body: Any) -> tuple[str, int] | None:
    """(partner id, points) of a body exactly as ``SwapQuoteRequest`` accepts it, else None."""
    if not isinstance(body, dict) or body.keys() != {"partner_id", "points"}:
        return None
    partner_id, points = body["partner_id"], body["points"]
    if (type(partner_id) is not str or not 1 <= len(partner_id) <= 32
            or not _PARTNER_ID.match(partner_id) or partner_id.endswith("\n")):
        return None
    if type(points) is not int or not 0 < points <= 10**12:
        return None
    return partner_id, points


def _swap_request(body: Any) -> str | None:
    """The quote id of a body exactly as ``SwapRequest`` accepts it, else None."""
    if not isinstance(body, dict) or body.keys() != {"quote_id"}:
        return None
    quote_id = body["quote_id"]
    if (type(quote_id) is not str or not 1 <= len(quote_id) <= 64
            or not _QUOTE_ID.match(quote_id) or quote_id.endswith("\n")):
        return None
    return quote_id


class ExchangeFastPath:
    """``POST /v1/me/swaps/quote`` and ``POST /v1/me/swaps`` on PostgreSQL, past the framework.

    Only a well-formed request is answered here: ``Content-Type: application/json``, one
    valid ``Idempotency-Key``, a body the route's model accepts as it is (exact keys, types and
    bounds). Anything else goes on to the FastAPI route, with the body read so far handed on,
    so every refusal of bad input is the framework's own problem response. The work is the
    route's own (:meth:`ApiContext.quote_once`, :meth:`ApiContext.swap_once`,
    :mod:`points.api.exchange_once`): both answer identically, which a test checks.
    """

    def __init__(self, app: ASGIApp, ctx: ApiContext, routes: dict[str, Any]) -> None:
        self.app = app
        self.ctx = ctx
        self.routes = routes  # path -> route, for the metrics label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        if (
            ctx.pg is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in self.routes
        ):
            await self.app(scope, receive, send)
            return
        key = authorization = None
        content_type = b""
        keys = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:  # the first, as the framework's headers.get
                    authorization = value.decode("latin-1")
            elif name == b"idempotency-key":
                key = value.decode("latin-1")
                keys += 1
            elif name == b"content-type":
                content_type = value
        received: list[Message] = []
        body = b""
        more = True
        while more and len(body) <= _BODY_MAX:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        parsed: Any = None
        if not more and keys == 1 and key is not None and _KEY.match(key) \
                and content_type == b"application/json":
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
        path = scope["path"]
        request = _quote_request(parsed) if path == QUOTE_PATH else _swap_request(parsed)
        if request is None or key is None:
            await self.app(scope, _replaying(received, receive), send)
            return
        scope["route"] = self.routes[path]
        try:
            customer_id = ctx.verifier.customer_id(authorization)
            ctx.limiter.take(customer_id)
            if isinstance(request, tuple):
                answer = await ctx.quote_once(customer_id, key, *request)
            else:
                answer = await ctx.swap_once(customer_id, key, request)
        except PointsError as exc:
            await _send_problem(send, exc)
            return
        payload = answer.body.encode()
        headers = [(b"content-type", answer.content_type.encode()),
                   (b"content-length", str(len(payload)).encode())]
        if answer.replayed:
            headers.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": answer.status_code,
                    "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _replaying(received: list[Message], receive: Receive) -> Receive:
    """``receive`` that first hands on the messages already read."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
