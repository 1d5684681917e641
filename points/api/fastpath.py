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

__all__ = ["BALANCE_PATH", "BalanceFastPath"]

BALANCE_PATH = "/v1/me/balance"
_JSON_HEADERS = [(b"content-type", b"application/json")]


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
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            customer_id = ctx.verifier.customer_id(authorization)
            ctx.limiter.take(customer_id)
            now = ctx.clock()
            view = await ctx.pg.balance(customer_id, now=now)
        except PointsError as exc:
            refused = error_response(exc)
            await send({"type": "http.response.start", "status": refused.status_code,
                        "headers": refused.raw_headers})
            await send({"type": "http.response.body", "body": bytes(refused.body)})
            return
        body = json.dumps(views.balance_body(customer_id, view, now),
                          separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
