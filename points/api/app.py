"""The application factory: ``create_app(settings, api_settings)`` wires everything; nothing
happens at import time. ``python -m points.api`` serves it with uvicorn.

Requests flow: metrics middleware → route → ``customer`` dependency (bearer token → ``sub``,
then the customer's rate limit) → a view function on a pooled connection in a worker thread
→ JSON. Every error leaves through :mod:`points.api.problems`.

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at
runtime, and some of their annotations refer to the settings of this very app.
"""


import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
import yaml
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from points.api import exchange as exchange_views
from points.api import exchange_once, idempotency, reads, views
from points.api.auth import TokenVerifier
from points.api.errors import NotConfigured, NotFound, NotReady
from points.api.exchange import build_exchange
from points.api.fastpath import (
    ACTIVITY_PATH,
    BALANCE_PATH,
    QUOTE_PATH,
    SWAP_PATH,
    ActivityFastPath,
    BalanceFastPath,
    ExchangeFastPath,
)
from points.api.gifts import gifts_router
from points.api.metrics import CONTENT_TYPE_LATEST, Metrics, MetricsMiddleware
from points.api.ops import ops_router
from points.api.pgread import PgReader
from points.api.problems import PROBLEM_JSON, install_problem_handlers
from points.api.ratelimit import RateLimiter
from points.api.refusals import refusals_router
from points.api.schemas import (
    ActivityPage,
    Balance,
    EarningPreview,
    PartnerLink,
    PartnerLinkRequest,
    PartnerLinks,
    PartnerPrograms,
    PreviewRequest,
    Problem,
    Progress,
    Referral,
    Swap,
    SwapPage,
    SwapQuote,
    SwapQuoteRequest,
    SwapRequest,
)
from points.api.settings import ApiSettings, load_api_settings
from points.api.swap_batches import SwapBatches
from points.db import make_engine
from points.errors import PointsError
from points.exchange import ExchangeService
from points.exchange.swap_desk import SwapNotFound
from points.ops_metrics import ConsumerLagReader
from points.partners import PartnersConfig
from points.rules import RuleSet, load_ruleset
from points.settings import Settings, load_settings

__all__ = ["ApiContext", "create_app"]

T = TypeVar("T")
Clock = Callable[[], datetime]

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}}
    for status in (401, 422, 429)
}
# The exchange routes: 404 unknown partner / quote / swap, 409 refusals of the moment (limits,
# quote expired, not linked, insufficient points), 503 exchange not configured or partner off.
_EXCHANGE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}}
    for status in (401, 404, 409, 422, 429, 503)
}
_EXCHANGE_POST_PROBLEMS = {**_EXCHANGE_PROBLEMS,
                           400: {"model": Problem, "content": {PROBLEM_JSON: {}}}}


class ApiContext:
    """What the routes share: engine, rules, partners, verifier, limiter, clock."""

    def __init__(
        self,
        engine: Engine,
        api: ApiSettings,
        ruleset: RuleSet,
        partners: PartnersConfig,
        clock: Clock,
        exchange: ExchangeService | None = None,
    ) -> None:
        self.engine = engine
        self._exchange = exchange
        self.api = api
        self.ruleset = ruleset
        self.partners = partners
        self.clock = clock
        self.verifier = TokenVerifier(api.jwt)
        self.limiter = RateLimiter(api.rate_limit)
        # Hex-decoded exactly as the partner worker decodes POINTS_REFERRAL_SECRET.
        self.referral_secret = api.referral_secret_bytes()
        self._referral_tables: bool | None = None
        # No more threads than pooled connections: a thread without a connection would only
        # wait for one (or, beyond the pool, open and close a new one per request).
        self._threads = anyio.CapacityLimiter(api.pool_size)
        self.pg = (
            PgReader(engine.url, size=api.pool_size, timeout_s=api.pool_timeout_s)
            if engine.dialect.name == "postgresql"
            else None
        )
        self.swap_batches = SwapBatches(lambda: self.exchange, self.pg, self.call, clock)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a pooled connection in a worker thread; a read-only, short use."""

        def work() -> T:
            with self.engine.connect() as conn:
                return fn(conn)

        return await anyio.to_thread.run_sync(work, limiter=self._threads)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        def work() -> T:
            with self.engine.begin() as conn:
                return fn(conn)

        return await anyio.to_thread.run_sync(work, limiter=self._threads)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (an exchange call with its own transaction) in a worker thread."""
        return await anyio.to_thread.run_sync(fn, limiter=self._threads)

    async def quote_once(self, customer_id: str, key: str, partner_id: str,
                         points: int) -> exchange_once.Answer:
        """``POST /v1/me/swaps/quote`` (:func:`points.api.exchange_once.quote_once`)."""
        return await exchange_once.quote_once(
            self.exchange, self.swap_batches.store_quote if self.pg is not None else None,
            self.call, customer_id, key, partner_id, points, self.clock())

    async def swap_once(self, customer_id: str, key: str, quote_id: str
                        ) -> exchange_once.Answer:
        """``POST /v1/me/swaps``, in the next batch of this process's swap requests
        (:mod:`points.api.swap_batches`): one transaction, one worker thread per batch."""
        return await self.swap_batches.accept(customer_id, key, quote_id)

    @property
    def exchange(self) -> ExchangeService:
        if self._exchange is None:
            raise NotConfigured("the partner exchange is not configured on this server")
        return self._exchange

    def referral_tables(self, conn: Connection) -> bool:
        if self._referral_tables is None:
            from points.api.reads import has_tables
            from points.exchange.tables import referral_codes, referrals

            self._referral_tables = has_tables(conn, referral_codes, referrals)
        return self._referral_tables


def _read_engine(url: str, api: ApiSettings) -> Engine:
    if url.startswith("sqlite"):
        return make_engine(url)
    # Reads are single statements or append-only rows: autocommit saves a BEGIN and a
    # ROLLBACK round trip per request; no pre-ping (one more round trip), recycle instead.
    engine = create_engine(
        url,
        pool_size=api.pool_size,
        max_overflow=0,
        pool_timeout=api.pool_timeout_s,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT",
    )

    @event.listens_for(engine, "connect")
    def _timeouts(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET statement_timeout = '5s'")
        cursor.close()

    return engine


def load_partners(path: Path) -> PartnersConfig:
    with path.open(encoding="utf-8") as handle:
        return PartnersConfig.model_validate(yaml.safe_load(handle))


def create_app(
    settings: Settings | None = None,
    api_settings: ApiSettings | None = None,
    *,
    engine: Engine | None = None,
    ruleset: RuleSet | None = None,
    partners: PartnersConfig | None = None,
    clock: Clock | None = None,
    exchange: ExchangeService | None = None,
    environ: Mapping[str, str] | None = None,
    lag_reader: ConsumerLagReader | None = None,
) -> FastAPI:
    """Build the API. Without arguments everything comes from the environment; the partner
    exchange is built from ``environ`` (default ``os.environ``: the partners' signing keys)
    unless ``exchange`` is given; the dashboard reads consumer lag through ``lag_reader``
    (default: from the Kafka brokers in ``settings``)."""
    settings = settings or load_settings()
    api = api_settings or load_api_settings()
    own_engine = engine is None
    engine = engine or _read_engine(settings.database_url, api)
    partners = partners or load_partners(api.partners_config)
    clock = clock or (lambda: datetime.now(UTC))
    if exchange is None:
        exchange = build_exchange(
            engine, partners, settings.kafka.topics, environ=environ,
            lot_lifetime_days=settings.rules.lot_lifetime_days, clock=clock,
        )
    ctx = ApiContext(
        engine=engine,
        api=api,
        ruleset=ruleset or load_ruleset(settings.rules.path),
        partners=partners,
        clock=clock,
        exchange=exchange,
    )
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Background work of this process, cancelled at shutdown: the idempotency key purge
        # (POINTS_API__IDEMPOTENCY__PURGE_INTERVAL_S; 0 leaves it to the CLI).
        async with anyio.create_task_group() as background:
            if api.idempotency.purge_interval_s > 0:
                background.start_soon(
                    partial(
                        idempotency.purge_periodically,
                        ctx.write,
                        ctx.clock,
                        retention_hours=api.idempotency.retention_hours,
                        interval_s=api.idempotency.purge_interval_s,
                    )
                )
            try:
                yield
            finally:
                background.cancel_scope.cancel()
        if ctx.pg is not None:
            await ctx.pg.close()
        if own_engine:
            engine.dispose()

    app = FastAPI(
        title="Points Exchange customer API",
        version="1.0.0",
        description="The signed-in customer's points: balance, activity, earning preview, "
        "progress, referral code, partner programs, partner membership links and point "
        "swaps. See docs/api.md.",
        lifespan=lifespan,
        # Prometheus (points.api.metrics) is our telemetry; FastAPI's OpenTelemetry hooks
        # cost 4% of the CPU per request when measured, for nothing configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.ctx = ctx
    app.state.metrics = metrics
    install_problem_handlers(app, authenticate=partial(_authenticate_customer, ctx))
    _routes(app, ctx, metrics)
    if lag_reader is None:
        # The composition root wires the one Kafka piece the API uses (points/ has none).
        from streams.consumer_lag import KafkaConsumerLag

        lag_reader = KafkaConsumerLag(settings.kafka)
    # /ops: the dashboard
    app.include_router(ops_router(engine, settings, api, lag_reader=lag_reader, clock=clock,
                                  ruleset=ctx.ruleset))
    app.include_router(refusals_router(_customer, ctx.api.activity_page_max, _PROBLEMS))
    app.include_router(gifts_router(_customer, settings.gifts, _EXCHANGE_POST_PROBLEMS,
                                    settings.kafka.topics.points_ledger))
    balance_route = next(r for r in app.routes if getattr(r, "path", None) == BALANCE_PATH)
    # Added last = outermost: metrics see every response, the fast path's too.
    app.add_middleware(BalanceFastPath, ctx=ctx, route=balance_route)
    activity_route = next(r for r in app.routes if getattr(r, "path", None) == ACTIVITY_PATH)
    app.add_middleware(ActivityFastPath, ctx=ctx, route=activity_route)
    exchange_routes = {path: r for r in app.routes
                       if (path := getattr(r, "path", None)) in (QUOTE_PATH, SWAP_PATH)
                       and "POST" in getattr(r, "methods", ())}
    app.add_middleware(ExchangeFastPath, ctx=ctx, routes=exchange_routes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


_bearer = HTTPBearer(auto_error=False, description="Bank-issued JWT; `sub` is the customer.")


async def _customer(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The signed-in customer: the token's ``sub``, after their rate limit. Runs on the event
    loop (no I/O), so the verifier's cache and the buckets need no locks."""
    ctx: ApiContext = request.app.state.ctx
    customer_id = ctx.verifier.customer_id(request.headers.get("authorization"))
    ctx.limiter.take(customer_id)
    return customer_id


def _authenticate_customer(ctx: ApiContext, request: Request) -> None:
    """The customer routes' token check, for problems raised before their dependencies ran
    (a body the framework could not parse)."""
    if request.url.path.startswith("/v1/"):
        ctx.verifier.customer_id(request.headers.get("authorization"))


Customer = Annotated[str, Depends(_customer)]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        pattern=idempotency.KEY_PATTERN,
        description="Required on every POST; 1-128 visible ASCII characters. The same "
        "key with the same body replays the first response.",
    ),
]


def answer_response(answer: exchange_once.Answer) -> Response:
    """An idempotent POST's answer, with ``Idempotent-Replayed: true`` when it is replayed."""
    return Response(answer.body, status_code=answer.status_code,
                    media_type=answer.content_type,
                    headers={"Idempotent-Replayed": "true"} if answer.replayed else None)


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status_code=status,
        media_type="application/json",
    )


def _routes(app: FastAPI, ctx: ApiContext, metrics: Metrics) -> None:
    async def run_idempotent(
        customer_id: str,
        key: str,
        route: str,
        body: dict[str, Any] | None,
        compute: Callable[[], Any],
        status: int = 200,
    ) -> Response:
        digest = idempotency.request_hash("POST", route, body)
        stored = await ctx.read(lambda c: idempotency.lookup(c, customer_id, key))
        if stored is None:
            try:
                result = await compute()
                response = idempotency.StoredResponse(
                    digest, status, result.model_dump_json(), "application/json"
                )
            except PointsError as exc:
                response = exchange_once.refusal(exc, digest)
            now = ctx.clock()
            inserted = await ctx.write(lambda c: idempotency.store(
                c, customer_id, key, method="POST", route=route, response=response, now=now))
            if inserted:
                return Response(response.body, status_code=response.status_code,
                                media_type=response.content_type)
            stored = await ctx.read(lambda c: idempotency.lookup(c, customer_id, key))
            assert stored is not None
        return answer_response(exchange_once.replay(stored, digest))

    # ------------------------------------------------------------------ operations

    @app.get("/health", tags=["operations"], summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], summary="Readiness: the database answers",
             responses={503: {"model": Problem, "content": {PROBLEM_JSON: {}}}})
    async def ready() -> dict[str, str]:
        try:
            await ctx.read(lambda c: c.execute(text("SELECT 1")).scalar_one())
        except Exception as exc:
            raise NotReady("the ledger database does not answer") from exc
        return {"status": "ready"}

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics",
             response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ the customer

    @app.get(BALANCE_PATH, tags=["points"], response_model=Balance, responses=_PROBLEMS,
             summary="Balance: available, held, debt, expiring in 30 and 90 days")
    async def get_balance(customer_id: Customer) -> Response:
        now = ctx.clock()
        if ctx.pg is not None:
            view = await ctx.pg.balance(customer_id, now=now)
        else:
            view = await ctx.read(lambda c: reads.balance(c, customer_id, now=now))
        return _json(views.balance_body(customer_id, view, now))

    @app.get("/v1/me/activity", tags=["points"], response_model=ActivityPage,
             responses=_PROBLEMS, summary="Statement lines, newest first, explained")
    async def get_activity(
        customer_id: Customer,
        limit: Annotated[int, Query(ge=1, le=ctx.api.activity_page_max)] = 20,
        cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    ) -> Response:
        before = views.decode_cursor(cursor)  # refuse a bad cursor before the database
        if ctx.pg is not None:
            rows, more = await ctx.pg.activity_page(customer_id, before_entry_id=before,
                                                    limit=limit)
            body = views.activity_body(ctx.ruleset, rows, more)
        else:
            body = await ctx.read(lambda c: views.activity(
                c, ctx.ruleset, customer_id, cursor=cursor, limit=limit))
        return Response(views.activity_json(body), media_type="application/json")

    @app.post("/v1/me/earning-preview", tags=["points"], response_model=EarningPreview,
              responses={**_PROBLEMS, 400: {"model": Problem, "content": {PROBLEM_JSON: {}}}},
              summary="What a purchase now would earn, and why (nothing is saved)")
    async def post_preview(
        body: PreviewRequest, customer_id: Customer, key: IdempotencyKey
    ) -> Response:
        async def compute() -> EarningPreview:
            now = ctx.clock()
            return await ctx.read(
                lambda c: views.earning_preview(c, ctx.ruleset, customer_id, body, now)
            )

        return await run_idempotent(
            customer_id, key, "/v1/me/earning-preview", body.model_dump(mode="json"), compute
        )

    @app.get("/v1/me/progress", tags=["gamification"], response_model=Progress,
             responses=_PROBLEMS, summary="Badges, streaks, challenges, milestones")
    async def get_progress(customer_id: Customer) -> Progress:
        now = ctx.clock()
        return await ctx.read(lambda c: views.progress(c, ctx.ruleset, customer_id, now))

    @app.get("/v1/me/referral", tags=["growth"], response_model=Referral,
             responses={**_PROBLEMS, 503: {"model": Problem, "content": {PROBLEM_JSON: {}}}},
             summary="The customer's referral code and their referrals")
    async def get_referral(customer_id: Customer) -> Referral:
        secret = ctx.referral_secret
        if secret is None:
            raise NotConfigured("referral codes are not configured on this server")

        def show(conn: Connection) -> Referral:
            if not ctx.referral_tables(conn):  # a code that cannot be stored would not work
                raise NotConfigured("the referral tables are not deployed (run the migrations)")
            return views.referral(conn, customer_id, secret, ctx.clock())

        # A write: the first GET stores the code it shows (insert-or-keep, one statement).
        return await ctx.write(show)

    @app.get("/v1/partners", tags=["partners"], response_model=PartnerPrograms,
             responses=_PROBLEMS, summary="Partner programs: rates, fees, limits")
    async def get_partners(_customer_id: Customer) -> PartnerPrograms:
        return views.partner_programs(ctx.partners)

    # ------------------------------------------------------------------ partner exchange
    # One path per operation: ExchangeService, as in the partner worker. Each service call
    # is its own transaction; the Idempotency-Key row is stored after it (docs/api.md,
    # "Idempotency of the exchange POSTs", says why a retry is safe anyway).

    async def exchange_call(fn: Callable[[ExchangeService], T]) -> T:
        service = ctx.exchange

        def work() -> T:
            try:
                return fn(service)
            except IntegrityError:
                # Two identical requests raced (same quote, same link): the loser's insert
                # hit the winner's row. Run once more: it now finds the winner's result.
                return fn(service)

        return await ctx.call(work)

    @app.post("/v1/me/links", tags=["exchange"], response_model=PartnerLink, status_code=202,
              responses=_EXCHANGE_POST_PROBLEMS,
              summary="Link a partner membership (the partner confirms it; swaps need it)")
    async def post_link(
        body: PartnerLinkRequest, customer_id: Customer, key: IdempotencyKey
    ) -> Response:
        async def compute() -> PartnerLink:
            view = await exchange_call(lambda ex: ex.request_link(
                customer_id, body.partner_id, body.partner_member_id,
                member_name=body.member_name))
            return exchange_views.link_body(view)

        return await run_idempotent(customer_id, key, "/v1/me/links",
                                    body.model_dump(mode="json"), compute, status=202)

    @app.get("/v1/me/links", tags=["exchange"], response_model=PartnerLinks,
             responses=_EXCHANGE_PROBLEMS, summary="The customer's partner membership links")
    async def get_links(customer_id: Customer) -> PartnerLinks:
        ctx.exchange  # noqa: B018 - 503 when the exchange is not configured
        return await ctx.read(lambda c: exchange_views.customer_links(c, customer_id))

    @app.post(exchange_once.QUOTE_ROUTE, tags=["exchange"], response_model=SwapQuote,
              status_code=201, responses=_EXCHANGE_POST_PROBLEMS,
              summary="Price a swap of points to a partner: rate, fee, partner units, expiry")
    async def post_quote(
        body: SwapQuoteRequest, customer_id: Customer, key: IdempotencyKey
    ) -> Response:
        return answer_response(await ctx.quote_once(customer_id, key, body.partner_id,
                                                    body.points))

    @app.post(exchange_once.SWAP_ROUTE, tags=["exchange"], response_model=Swap,
              status_code=202, responses=_EXCHANGE_POST_PROBLEMS,
              summary="Accept a quote: the points are held and the partner is asked")
    async def post_swap(
        body: SwapRequest, customer_id: Customer, key: IdempotencyKey
    ) -> Response:
        return answer_response(await ctx.swap_once(customer_id, key, body.quote_id))

    @app.get("/v1/me/swaps", tags=["exchange"], response_model=SwapPage,
             responses=_EXCHANGE_PROBLEMS, summary="The customer's swaps, newest first")
    async def get_swaps(
        customer_id: Customer,
        limit: Annotated[int, Query(ge=1, le=ctx.api.activity_page_max)] = 20,
        cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    ) -> SwapPage:
        ctx.exchange  # noqa: B018 - 503 when the exchange is not configured
        exchange_views.decode_swap_cursor(cursor)  # refuse a bad cursor before the database
        return await ctx.read(lambda c: exchange_views.swap_page(
            c, customer_id, cursor=cursor, limit=limit))

    SwapId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]

    @app.get("/v1/me/swaps/{swap_id}", tags=["exchange"], response_model=Swap,
             responses=_EXCHANGE_PROBLEMS,
             summary="One swap: pending, completed, rejected, expired or cancelled, and why")
    async def get_swap(swap_id: SwapId, customer_id: Customer) -> Swap:
        view = await exchange_call(lambda ex: ex.swap_status(customer_id, swap_id))
        if view is None:
            # Another customer's swap does not exist for this one: exactly an unknown path.
            raise NotFound("no such resource")
        return exchange_views.swap_body(view)

    @app.post("/v1/me/swaps/{swap_id}/cancel", tags=["exchange"], response_model=Swap,
              responses=_EXCHANGE_POST_PROBLEMS,
              summary="Cancel a swap the partner has not confirmed; the points come back")
    async def post_cancel(swap_id: SwapId, customer_id: Customer, key: IdempotencyKey
                          ) -> Response:
        async def compute() -> Swap:
            try:
                view = await exchange_call(lambda ex: ex.cancel_swap(customer_id, swap_id))
            except SwapNotFound:
                raise NotFound("no such resource") from None
            return exchange_views.swap_body(view)

        return await run_idempotent(customer_id, key, f"/v1/me/swaps/{swap_id}/cancel",
                                    None, compute)
