"""The partner exchange routes (/v1/me/links, /v1/me/swaps...) on a real ledger, through the
same ExchangeService the partner worker runs. No Kafka here: the outbox rows (what the relay
would publish) are the observable effect towards the partner."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from points.exchange import swap_id_for

from .conftest import NOW, TOPICS, Api, TestClient, assert_problem, bearer, build_app


def balance(api: Api, customer: str = "alice") -> tuple[int, int]:
    body = api.get("/v1/me/balance", customer).json()
    return body["available"], body["held"]


def quote(api: Api, partner: str = "ridehail", points: int = 400, customer: str = "alice",
          key: str | None = None) -> dict[str, Any]:
    response = api.post("/v1/me/swaps/quote", {"partner_id": partner, "points": points},
                        key or f"q-{partner}-{points}-{api.clock.now.timestamp()}", customer)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def swap(api: Api, quote_id: str, customer: str = "alice", key: str | None = None) -> Any:
    return api.post("/v1/me/swaps", {"quote_id": quote_id}, key or f"s-{quote_id}", customer)


def open_swap(api: Api, partner: str = "ridehail", points: int = 400, customer: str = "alice"
              ) -> dict[str, Any]:
    response = swap(api, quote(api, partner, points, customer)["quote_id"], customer)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "pending"
    return body


# ----------------------------------------------------------------------------------- links


def test_link_request_is_pending_and_asks_the_partner_through_the_outbox(api: Api) -> None:
    """POST /v1/me/links answers 202 with a pending link, and a signed member_link_requested
    waits in the outbox for the partner's requests topic; GET /v1/me/links lists it."""
    response = api.post("/v1/me/links", {"partner_id": "ridehail", "partner_member_id": "R-9"},
                        "link-1")
    assert response.status_code == 202, response.text
    assert response.json() == {"partner_id": "ridehail", "partner_member_id": "R-9",
                               "status": "pending", "reason": None}
    [row] = api.outbox("member_link_requested")
    assert row["topic"] == "partner.ridehail.requests"
    assert row["body"]["customer_id"] == "alice" and row["body"]["partner_member_id"] == "R-9"
    assert {"x-signature", "x-key-id", "x-signed-at"} <= set(row["headers"])
    listed = api.get("/v1/me/links")
    assert listed.status_code == 200
    assert listed.json() == {"items": [response.json()]}
    assert api.get("/v1/me/links", "bob").json() == {"items": []}


def test_link_post_is_idempotent_and_a_repeat_asks_the_partner_once(api: Api) -> None:
    """Same key and body: the stored answer, replayed; same key, other body: 422
    idempotency_key_reused; a new key for the same membership: the same pending link and no
    second request to the partner."""
    body = {"partner_id": "eshop", "partner_member_id": "E-1"}
    first = api.post("/v1/me/links", body, "k1")
    again = api.post("/v1/me/links", body, "k1")
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert_problem(api.post("/v1/me/links", {**body, "partner_member_id": "E-2"}, "k1"),
                   422, "idempotency_key_reused")
    assert api.post("/v1/me/links", body, "k2").json() == first.json()
    assert len(api.outbox("member_link_requested")) == 1


def test_link_shows_linked_and_rejected_states(api: Api) -> None:
    """The partner's answer (here seeded in the table, as the worker records it) is what GET
    shows: linked, or rejected with the partner's reason."""
    api.link("alice", "ridehail", "R-1")
    api.post("/v1/me/links", {"partner_id": "eshop", "partner_member_id": "E-1"}, "k")
    with api.engine.begin() as conn:
        from sqlalchemy import update

        from points.exchange.tables import partner_links

        conn.execute(update(partner_links).where(partner_links.c.partner_id == "eshop")
                     .values(status="rejected", reason="member_not_found: no such member"))
    items = api.get("/v1/me/links").json()["items"]
    assert [(i["partner_id"], i["status"], i["reason"]) for i in items] == [
        ("eshop", "rejected", "member_not_found: no such member"),
        ("ridehail", "linked", None)]


def test_link_refusals(api: Api) -> None:
    """Unknown partner 404 unknown_partner; the airline without a member name 422
    invalid_request; no key 400; unknown fields 422; nothing reaches the outbox."""
    assert_problem(api.post("/v1/me/links", {"partner_id": "nope", "partner_member_id": "X"},
                            "a"), 404, "unknown_partner")
    assert_problem(api.post("/v1/me/links", {"partner_id": "airline",
                                             "partner_member_id": "A-1"}, "b"),
                   422, "invalid_request")
    assert_problem(api.post("/v1/me/links", {"partner_id": "eshop", "partner_member_id": "E"},
                            None), 400, "idempotency_key_required")
    assert_problem(api.post("/v1/me/links", {"partner_id": "eshop", "partner_member_id": "E",
                                             "customer_id": "bob"}, "c"),
                   422, "validation_error")
    assert api.outbox() == []
    ok = api.post("/v1/me/links", {"partner_id": "airline", "partner_member_id": "A-1",
                                   "member_name": "Li Lei"}, "d")
    assert ok.status_code == 202
    assert "Li Lei" not in ok.text and "Li Lei" not in str(api.outbox())


# ----------------------------------------------------------------------------------- quotes


def test_quote_prices_the_swap_and_stores_it(api: Api) -> None:
    """eshop: 1000 points -> 200 beans, fee 1% = 10 points (clamped to >= 10), valid for
    300 s; a replay under the same key is the same quote."""
    response = api.post("/v1/me/swaps/quote", {"partner_id": "eshop", "points": 1000}, "q1")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["quote_id"].startswith("q-")
    assert {k: body[k] for k in ("partner_id", "points", "fee_points", "total_points",
                                 "partner_units", "rate_num", "rate_den")} == {
        "partner_id": "eshop", "points": 1000, "fee_points": 10, "total_points": 1010,
        "partner_units": 200, "rate_num": 1, "rate_den": 5}
    assert body["quoted_at"] == NOW.isoformat().replace("+00:00", "Z")
    assert body["expires_at"] == (NOW + timedelta(seconds=300)).isoformat().replace(
        "+00:00", "Z")
    replay = api.post("/v1/me/swaps/quote", {"partner_id": "eshop", "points": 1000}, "q1")
    assert replay.json() == body and replay.headers["idempotent-replayed"] == "true"


def test_quote_refusals_map_to_their_statuses(api: Api) -> None:
    """Below minimum, above maximum, not a multiple: 422 with the partner rule's code;
    an unknown partner 404; a non-integer or non-positive amount 422 validation_error."""
    cases = [({"partner_id": "ridehail", "points": 300}, 422, "swap_below_minimum"),
             ({"partner_id": "ridehail", "points": 40_100}, 422, "swap_above_maximum"),
             ({"partner_id": "ridehail", "points": 450}, 422, "not_a_multiple"),
             ({"partner_id": "nope", "points": 400}, 404, "unknown_partner"),
             ({"partner_id": "ridehail", "points": 0}, 422, "validation_error"),
             ({"partner_id": "ridehail", "points": "400"}, 422, "validation_error"),
             ({"partner_id": "ridehail", "points": 4.0e2}, 422, "validation_error")]
    for i, (body, status, code) in enumerate(cases):
        assert_problem(api.post("/v1/me/swaps/quote", body, f"k{i}"), status, code)
    # A refusal is stored under its key too: the replay is the same refusal.
    replay = api.post("/v1/me/swaps/quote", cases[0][0], "k0")
    assert_problem(replay, 422, "swap_below_minimum")
    assert replay.headers["idempotent-replayed"] == "true"


# ------------------------------------------------------------------------------------ swaps


def test_swap_holds_points_and_asks_the_partner(api: Api) -> None:
    """Accepting a quote: 202 pending, points + fee held, swap_requested in the outbox with
    the quote's amounts; the id derives from the quote, and GET shows the swap."""
    api.fund("alice", 2000)
    api.link("alice", "eshop")
    q = quote(api, "eshop", 1000)
    response = swap(api, q["quote_id"])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["swap_id"] == swap_id_for(q["quote_id"])
    assert {k: body[k] for k in ("partner_id", "points", "fee_points", "partner_units",
                                 "status", "reason")} == {
        "partner_id": "eshop", "points": 1000, "fee_points": 10, "partner_units": 200,
        "status": "pending", "reason": "awaiting_partner"}
    assert balance(api) == (990, 1010)
    [request] = api.outbox("swap_requested")
    assert request["topic"] == "partner.eshop.requests"
    assert request["body"]["swap_id"] == body["swap_id"]
    assert (request["body"]["points"], request["body"]["partner_points"]) == (1000, 200)
    assert {r["topic"] for r in api.outbox()} >= {TOPICS.points_ledger}
    got = api.get(f"/v1/me/swaps/{body['swap_id']}")
    assert got.status_code == 200 and got.json() == body


def test_swap_is_one_per_quote_whatever_the_key(api: Api) -> None:
    """A retry of the same quote under a new key is the same swap: one hold, one request;
    the same key replays; the same key for another quote is refused."""
    api.fund("alice", 2000)
    api.link("alice", "ridehail")
    q = quote(api)["quote_id"]
    first = swap(api, q, key="s1")
    again = swap(api, q, key="s2")
    assert again.status_code == 202 and again.json() == first.json()
    replay = swap(api, q, key="s1")
    assert replay.json() == first.json() and replay.headers["idempotent-replayed"] == "true"
    api.clock.advance(seconds=1)
    other = quote(api)["quote_id"]
    assert_problem(swap(api, other, key="s1"), 422, "idempotency_key_reused")
    assert balance(api) == (1600, 400)
    assert len(api.outbox("swap_requested")) == 1


def test_swap_refusals_map_to_their_statuses_and_hold_nothing(api: Api) -> None:
    """Not linked 409 member_not_linked; expired quote 409 quote_expired; unknown quote and
    another customer's quote 404 unknown_quote; over the daily limit 409
    daily_limit_exceeded; a wallet that cannot cover it 409 insufficient_points (the swap
    is recorded rejected, nothing held)."""
    api.fund("alice", 100_000)
    not_linked = quote(api, "eshop", 1000)["quote_id"]
    assert_problem(swap(api, not_linked), 409, "member_not_linked")
    api.link("alice", "ridehail")
    stale = quote(api, "ridehail", 500)["quote_id"]
    api.clock.advance(seconds=301)
    assert_problem(swap(api, stale), 409, "quote_expired")
    assert_problem(swap(api, "q-made-up"), 404, "unknown_quote")
    bobs = quote(api, "ridehail", 400, customer="bob")["quote_id"]
    assert_problem(swap(api, bobs), 404, "unknown_quote")
    open_swap(api, "ridehail", 40_000)
    api.clock.advance(seconds=1)
    assert_problem(swap(api, quote(api, "ridehail", 400)["quote_id"]), 409,
                   "daily_limit_exceeded")
    assert balance(api) == (60_000, 40_000)
    api.fund("carol", 100)
    api.link("carol", "ridehail")
    q = quote(api, "ridehail", 400, customer="carol")["quote_id"]
    problem = assert_problem(swap(api, q, customer="carol"), 409, "insufficient_points")
    assert swap_id_for(q) in problem["detail"]
    assert balance(api, "carol") == (100, 0)
    shown = api.get(f"/v1/me/swaps/{swap_id_for(q)}", "carol").json()
    assert (shown["status"], shown["reason"]) == ("rejected", "insufficient_points")
    # A retry under a new key answers the same refusal (the swap id derives from the quote).
    assert_problem(swap(api, q, customer="carol", key="again"), 409, "insufficient_points")


def test_another_customers_swap_is_not_found(api: Api) -> None:
    """Bob cannot read, nor cancel, Alice's swap: 404 not_found, exactly like an unknown
    path; Alice's swap stays pending."""
    api.fund("alice", 1000)
    api.link("alice", "ridehail")
    swap_id = open_swap(api)["swap_id"]
    unknown_path = api.get("/v1/nothing-here", "bob").json()
    assert assert_problem(api.get(f"/v1/me/swaps/{swap_id}", "bob"), 404,
                          "not_found") == unknown_path
    assert_problem(api.get("/v1/me/swaps/sw-unknown"), 404, "not_found")
    assert assert_problem(api.post(f"/v1/me/swaps/{swap_id}/cancel", None, "c", "bob"),
                          404, "not_found") == unknown_path
    assert api.get("/v1/me/swaps", "bob").json() == {"items": [], "next_cursor": None}
    assert api.get(f"/v1/me/swaps/{swap_id}").json()["status"] == "pending"
    assert balance(api) == (600, 400)


def test_swaps_list_is_newest_first_in_cursor_pages(api: Api) -> None:
    """Five swaps in pages of two: newest first, no swap twice or missing, null cursor at the
    end; a cursor this API did not issue is 422 invalid_cursor."""
    api.fund("alice", 10_000)
    api.link("alice", "ridehail")
    made = []
    for i in range(5):
        made.append(open_swap(api, points=400 + 100 * i)["swap_id"])
        api.clock.advance(seconds=1)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/me/swaps", **params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [s["swap_id"] for s in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1] and pages == 3
    for bad in ("nope", "czox", "e:12"):
        assert_problem(api.get("/v1/me/swaps", cursor=bad), 422, "invalid_cursor")


# ----------------------------------------------------------------------------------- cancel


def test_cancel_returns_the_points_and_tells_the_partner(api: Api) -> None:
    """Cancel a pending swap: 200 cancelled, the hold voided (balance back), swap_cancelled
    queued; again under a new key: the same answer, nothing more happens; the same key
    replays."""
    api.fund("alice", 1000)
    api.link("alice", "ridehail")
    swap_id = open_swap(api)["swap_id"]
    response = api.post(f"/v1/me/swaps/{swap_id}/cancel", None, "c1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["reason"]) == ("cancelled", "cancelled_by_customer")
    assert balance(api) == (1000, 0)
    [cancel] = api.outbox("swap_cancelled")
    assert cancel["body"]["swap_id"] == swap_id
    assert api.post(f"/v1/me/swaps/{swap_id}/cancel", None, "c2").json() == body
    replay = api.post(f"/v1/me/swaps/{swap_id}/cancel", None, "c1")
    assert replay.json() == body and replay.headers["idempotent-replayed"] == "true"
    assert len(api.outbox("swap_cancelled")) == 1
    assert api.get(f"/v1/me/swaps/{swap_id}").json()["status"] == "cancelled"


def test_cancel_refuses_a_final_swap_and_a_reused_key(api: Api) -> None:
    """A swap the partner rejected (insufficient points here) is final: 409
    swap_not_cancellable; a key used to cancel one swap is refused for another."""
    api.fund("alice", 1000)
    api.link("alice", "ridehail")
    pending = open_swap(api)["swap_id"]
    api.post(f"/v1/me/swaps/{pending}/cancel", None, "k")
    api.clock.advance(seconds=1)
    q = quote(api, "ridehail", 2000)["quote_id"]
    assert_problem(swap(api, q), 409, "insufficient_points")
    assert_problem(api.post(f"/v1/me/swaps/{swap_id_for(q)}/cancel", None, "k2"),
                   409, "swap_not_cancellable")
    assert_problem(api.post(f"/v1/me/swaps/{swap_id_for(q)}/cancel", None, "k"),
                   422, "idempotency_key_reused")
    assert_problem(api.post(f"/v1/me/swaps/{pending}/cancel", None, None),
                   400, "idempotency_key_required")


# ---------------------------------------------------------------------- auth, configuration


def test_exchange_routes_need_a_token(api: Api) -> None:
    """Every exchange route is 401 without a token, and nothing is stored."""
    for method, path in (("GET", "/v1/me/links"), ("POST", "/v1/me/links"),
                         ("POST", "/v1/me/swaps/quote"), ("POST", "/v1/me/swaps"),
                         ("GET", "/v1/me/swaps"), ("GET", "/v1/me/swaps/sw-1"),
                         ("POST", "/v1/me/swaps/sw-1/cancel")):
        response = api.client.request(method, path, headers={"Idempotency-Key": "k"},
                                      json={"partner_id": "ridehail", "points": 400})
        assert_problem(response, 401, "unauthenticated")
    assert api.outbox() == []


def test_without_partner_keys_the_exchange_routes_are_not_configured(
    migrated_url: str, api: Api
) -> None:
    """An API started without the partners' signing keys serves everything else and answers
    the exchange routes 503 not_configured (never stored under the key)."""
    engine: Engine = api.engine
    app = build_app(migrated_url, engine, environ={})
    with TestClient(app) as client:
        headers = {**bearer("alice"), "Idempotency-Key": "k"}
        assert_problem(client.get("/v1/me/links", headers=headers), 503, "not_configured")
        assert_problem(client.get("/v1/me/swaps/sw-1", headers=headers), 503, "not_configured")
        assert_problem(client.post("/v1/me/swaps/quote", headers=headers,
                                   json={"partner_id": "ridehail", "points": 400}),
                       503, "not_configured")
        assert client.get("/v1/me/balance", headers=headers).status_code == 200
    # The 503 was not stored: the same key works once the exchange is configured.
    assert api.post("/v1/me/swaps/quote", {"partner_id": "ridehail", "points": 400},
                    "k").status_code == 201
