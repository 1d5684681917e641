"""Swap requests under concurrency: the quote and the swap each exactly once per
Idempotency-Key, swap requests accepted together in one transaction (points/api/swap_batches.py),
and the PostgreSQL fast path past FastAPI (points/api/fastpath.py, ExchangeFastPath) answering
exactly as the framework's route. Real ledger, SQLite and PostgreSQL; concurrency through an
ASGI client on the app's own event loop, and two apps on one database for two API processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from points.api.tables import idempotency_keys
from points.db import make_engine
from points.exchange import swap_id_for
from points.exchange.tables import swap_quotes, swaps
from points.migrate import upgrade
from points.rules import load_ruleset

from .conftest import RULES, Api, assert_problem, bearer, build_app
from .test_exchange import balance, quote

Request = tuple[str, dict[str, Any], str | None, str]  # path, body, key, customer


async def _post_all(apps: Sequence[Any], requests: Sequence[Request]) -> list[httpx.Response]:
    """All requests at once, spread over the apps (each an API process of its own)."""
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") for app in apps]
    try:
        async def one(i: int, request: Request) -> httpx.Response:
            path, body, key, customer = request
            headers = bearer(customer)
            if key is not None:
                headers["Idempotency-Key"] = key
            return await clients[i % len(clients)].post(path, json=body, headers=headers)

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))
    finally:
        for client in clients:
            await client.aclose()
        for app in apps:
            if app.state.ctx.pg is not None:
                await app.state.ctx.pg.close()


def post_concurrently(api: Api, requests: Sequence[Request], *, apps: int = 1
                      ) -> list[httpx.Response]:
    """``requests`` at once through ``apps`` fresh apps on the test's database (their own
    pools and swap batches, as separate API processes would have)."""
    url = api.engine.url.render_as_string(hide_password=False)
    built = [build_app(url, api.engine, clock=api.clock) for _ in range(apps)]
    return asyncio.run(_post_all(built, requests))


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where))
                   .scalar_one())


def test_concurrent_accepts_under_one_key_open_one_swap_and_answer_alike(api: Api) -> None:
    """Eight identical swap requests (same customer, quote and key) at once: all answer 202
    with the same body, seven of them as replays; one swap, one hold, one swap_requested,
    one stored key."""
    api.fund("alice", 2000)
    api.link("alice", "ridehail")
    q = quote(api)["quote_id"]
    answers = post_concurrently(api, [("/v1/me/swaps", {"quote_id": q}, "k1", "alice")] * 8)
    assert {r.status_code for r in answers} == {202}
    assert len({r.text for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 7
    assert count(api.engine, swaps) == 1
    assert balance(api) == (1600, 400)
    assert len(api.outbox("swap_requested")) == 1
    assert count(api.engine, idempotency_keys,
                 idempotency_keys.c.route == "/v1/me/swaps") == 1


def test_concurrent_accepts_of_one_quote_under_many_keys_open_one_swap(api: Api) -> None:
    """Eight requests accepting the same quote under eight keys at once: one swap (its id
    derives from the quote), every answer that swap, one hold, one request to the partner."""
    api.fund("alice", 2000)
    api.link("alice", "ridehail")
    q = quote(api)["quote_id"]
    answers = post_concurrently(
        api, [("/v1/me/swaps", {"quote_id": q}, f"k{i}", "alice") for i in range(8)])
    assert {r.status_code for r in answers} == {202}
    assert {r.json()["swap_id"] for r in answers} == {swap_id_for(q)}
    assert count(api.engine, swaps) == 1
    assert balance(api) == (1600, 400)
    assert len(api.outbox("swap_requested")) == 1


def test_many_customers_accepted_together_each_get_their_own_answer(api: Api) -> None:
    """Twenty customers' swaps at once (one transaction for those that queue together), with
    a wallet that cannot cover its swap, a replay of an accepted key and a quote of another
    customer among them: each answers for itself (202, 409 insufficient_points, the replay,
    404 unknown_quote) and only the covered swaps hold points."""
    customers = [f"c{i:02d}" for i in range(20)]
    for c in customers:
        api.fund(c, 100 if c == "c07" else 1000)
        api.link(c, "ridehail")
    quotes = {c: quote(api, customer=c, key=f"q-{c}")["quote_id"] for c in customers}
    first = api.post("/v1/me/swaps", {"quote_id": quotes["c03"]}, "s-c03", "c03")
    assert first.status_code == 202
    requests: list[Request] = [("/v1/me/swaps", {"quote_id": quotes[c]}, f"s-{c}", c)
                               for c in customers]
    requests.append(("/v1/me/swaps", {"quote_id": quotes["c05"]}, "s-stolen", "c06"))
    answers = post_concurrently(api, requests)
    by_customer = dict(zip(customers, answers[:20], strict=True))
    for c, r in by_customer.items():
        if c == "c07":
            assert_problem(r, 409, "insufficient_points")
            continue
        assert r.status_code == 202, r.text
        assert r.json()["swap_id"] == swap_id_for(quotes[c])
        assert balance(api, c) == (600, 400)
    assert by_customer["c03"].headers["idempotent-replayed"] == "true"
    assert by_customer["c03"].text == first.text
    assert_problem(answers[20], 404, "unknown_quote")
    assert balance(api, "c07") == (100, 0)
    assert len(api.outbox("swap_requested")) == 19


def test_concurrent_quotes_under_one_key_store_one_answer(api: Api) -> None:
    """Six identical quote requests (same key) at once: one answer, the same quote id for all
    (five replayed), one stored key; a quote the customer never saw may be stored as well
    (a loser of the race priced it), but only the answered one can be accepted by them."""
    api.fund("alice", 2000)
    api.link("alice", "ridehail")
    body = {"partner_id": "ridehail", "points": 400}
    answers = post_concurrently(api, [("/v1/me/swaps/quote", body, "q1", "alice")] * 6)
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["quote_id"] for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 5
    assert count(api.engine, idempotency_keys) == 1
    assert count(api.engine, swap_quotes, swap_quotes.c.quote_id ==
                 answers[0].json()["quote_id"]) == 1


def test_two_api_processes_racing_on_one_key_open_one_swap(fresh_pg_url: str) -> None:
    """Two apps on one PostgreSQL database (two API processes, each its own swap batches), the
    same swap request under the same key sent to both at once, five rounds: per round one
    swap and one stored key, every answer alike, the holds exactly the swaps."""
    upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    try:
        api = Api(engine=engine, client=None, ruleset=load_ruleset(RULES))  # type: ignore[arg-type]
        api.fund("alice", 5000)
        api.link("alice", "ridehail")
        for n in range(5):
            api.clock.advance(seconds=1)  # a quote's id derives from its time
            q = _quote_in(api, n)
            answers = post_concurrently(
                api, [("/v1/me/swaps", {"quote_id": q}, f"race-{n}", "alice")] * 6, apps=2)
            assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
            assert len({r.text for r in answers}) == 1
        assert count(engine, swaps) == 5
        assert count(engine, idempotency_keys, idempotency_keys.c.route == "/v1/me/swaps") == 5
        with engine.connect() as conn:
            held = conn.execute(select(func.sum(swaps.c.points + swaps.c.fee_points))).scalar()
        assert held == 5 * 400
        assert len(api.outbox("swap_requested")) == 5
    finally:
        engine.dispose()


def _quote_in(api: Api, n: int) -> str:
    answers = post_concurrently(
        api, [("/v1/me/swaps/quote", {"partner_id": "ridehail", "points": 400}, f"q-{n}",
               "alice")])
    assert answers[0].status_code == 201, answers[0].text
    return str(answers[0].json()["quote_id"])


def test_the_fast_path_answers_as_the_framework_route(api: Api, migrated_url: str) -> None:
    """On PostgreSQL well-formed swap POSTs are answered past FastAPI (ExchangeFastPath); with
    it switched off, the FastAPI route answers. Same statuses, content types and bodies (ids
    aside, a quote's id is random) for answers, replays, a reused key and every bad input:
    no key, a bad key, two keys, no token, a bad token, malformed JSON, a wrong content type,
    a missing, extra or mistyped field, out-of-range points, a bad partner id or quote id."""
    api.fund("alice", 100_000)
    api.link("alice", "ridehail")
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    good = {"partner_id": "ridehail", "points": 400}

    def answers(run: str) -> list[tuple[int, str, str | None, Any]]:
        q = api.post("/v1/me/swaps/quote", good, f"{run}-q", "alice")
        quote_id = q.json()["quote_id"]
        raw: list[tuple[str, bytes | None, dict[str, str]]] = [
            ("/v1/me/swaps/quote", None, {"Idempotency-Key": f"{run}-q"}),  # replay
            ("/v1/me/swaps", json.dumps({"quote_id": quote_id}).encode(),
             {"Idempotency-Key": f"{run}-s"}),
            ("/v1/me/swaps", json.dumps({"quote_id": quote_id}).encode(),
             {"Idempotency-Key": f"{run}-s"}),  # replay
            ("/v1/me/swaps", b'{"quote_id": "q-other"}', {"Idempotency-Key": f"{run}-s"}),
            ("/v1/me/swaps", b'{"quote_id": "q-none"}', {"Idempotency-Key": f"{run}-u"}),
            ("/v1/me/swaps/quote", b'{"partner_id": "nobody", "points": 5}',
             {"Idempotency-Key": f"{run}-p"}),
            ("/v1/me/swaps/quote", None, {}),
            ("/v1/me/swaps/quote", None, {"Idempotency-Key": "has space"}),
            ("/v1/me/swaps/quote", None, {"Idempotency-Key": "x" * 129}),
            ("/v1/me/swaps/quote", None, {"Idempotency-Key": f"{run}-n", "Authorization": ""}),
            ("/v1/me/swaps/quote", None,
             {"Idempotency-Key": f"{run}-n", "Authorization": "Bearer x.y.z"}),
            ("/v1/me/swaps/quote", b"{not json", {"Idempotency-Key": f"{run}-j"}),
            ("/v1/me/swaps/quote", json.dumps(good).encode(),
             {"Idempotency-Key": f"{run}-t", "Content-Type": "text/plain"}),
            ("/v1/me/swaps/quote", b'{"partner_id": "ridehail"}', {"Idempotency-Key": f"{run}-a"}),
            ("/v1/me/swaps/quote", b'{"partner_id": "ridehail", "points": 4, "x": 1}',
             {"Idempotency-Key": f"{run}-b"}),
            ("/v1/me/swaps/quote", b'{"partner_id": "ridehail", "points": 4.0}',
             {"Idempotency-Key": f"{run}-c"}),
            ("/v1/me/swaps/quote", b'{"partner_id": "ridehail", "points": true}',
             {"Idempotency-Key": f"{run}-d"}),
            ("/v1/me/swaps/quote", b'{"partner_id": "ridehail", "points": "4"}',
             {"Idempotency-Key": f"{run}-e"}),
            ("/v1/me/swaps/quote", b'{"partner_id": "ridehail", "points": 0}',
             {"Idempotency-Key": f"{run}-f"}),
            ("/v1/me/swaps/quote", b'{"partner_id": "ridehail", "points": 1000000000001}',
             {"Idempotency-Key": f"{run}-g"}),
            ("/v1/me/swaps/quote", b'{"partner_id": "Ride hail", "points": 4}',
             {"Idempotency-Key": f"{run}-h"}),
            ("/v1/me/swaps", b'{"quote_id": ""}', {"Idempotency-Key": f"{run}-i"}),
            ("/v1/me/swaps", b'{"quote_id": "a b"}', {"Idempotency-Key": f"{run}-k"}),
            ("/v1/me/swaps", b'[1, 2]', {"Idempotency-Key": f"{run}-l"}),
        ]
        out = []
        for path, body, extra in raw:
            headers = {**bearer("alice"), "Content-Type": "application/json", **extra}
            content = json.dumps(good).encode() if body is None else body
            r = api.client.post(path, content=content, headers=headers)
            payload: Any = r.json()
            if isinstance(payload, dict):
                payload = {k: v for k, v in payload.items()
                           if k not in ("quote_id", "swap_id", "detail")}
            out.append((r.status_code, r.headers["content-type"],
                        r.headers.get("idempotent-replayed"), payload))
        return out

    fast = answers("fast")
    reader, ctx.pg = ctx.pg, None
    try:
        plain = answers("plain")
    finally:
        ctx.pg = reader
    assert fast == plain
    assert (reader is not None) == migrated_url.startswith("postgresql")
    assert [status for status, _, _, _ in fast] == [
        201, 202, 202, 422, 404, 404, 400, 422, 422, 401, 401, 400, 400, 422, 422, 422, 422,
        422, 422, 422, 422, 422, 422, 422]
    assert [replayed for _, _, replayed, _ in fast][:3] == ["true", None, "true"]


def test_one_customers_concurrent_swaps_respect_the_daily_limit(api: Api) -> None:
    """Five swaps of one customer accepted at once, 10,000-10,400 points each, against
    ridehail's daily limit of 40,000: any three fit and no four do, so exactly three are
    accepted and two refused with 409 daily_limit_exceeded, and only the three are held (one
    customer's swaps never run in two transactions at once, whose limit reads would both
    pass)."""
    api.fund("alice", 100_000)
    api.link("alice", "ridehail")
    quotes = [quote(api, points=10_000 + 100 * i, key=f"q{i}")["quote_id"] for i in range(5)]
    answers = post_concurrently(
        api, [("/v1/me/swaps", {"quote_id": q}, f"s{i}", "alice") for i, q in enumerate(quotes)])
    accepted = [r.json()["points"] for r in answers if r.status_code == 202]
    refused = [r for r in answers if r.status_code != 202]
    assert len(accepted) == 3
    for r in refused:
        assert_problem(r, 409, "daily_limit_exceeded")
    assert balance(api) == (100_000 - sum(accepted), sum(accepted))
    assert len(api.outbox("swap_requested")) == 3
