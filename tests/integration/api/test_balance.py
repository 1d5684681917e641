"""GET /v1/me/balance: available, held, debt, and what expires within 30 and 90 days."""

from __future__ import annotations

from datetime import timedelta

from points.api.schemas import Balance
from points.ledger import Earn, Hold

from .conftest import NOW, Api, bearer


def test_a_new_customer_has_zero_everywhere(api: Api) -> None:
    """No accounts yet: every figure is 0 (not 404: the customer exists for the bank)."""
    body = api.get("/v1/me/balance").json()
    assert body == {"customer_id": "alice", "available": 0, "held": 0, "debt": 0,
                    "expiring_30d": 0, "expiring_90d": 0, "as_of": NOW.isoformat()}
    Balance.model_validate(body)


def test_balance_shows_held_points_and_expiry_windows(api: Api) -> None:
    """Lots expiring in 10, 60 and 200 days; a pending hold takes the soonest lot first."""
    api.apply([
        Earn("e-10", "alice", 100, NOW + timedelta(days=10)),
        Earn("e-60", "alice", 200, NOW + timedelta(days=60)),
        Earn("e-200", "alice", 400, NOW + timedelta(days=200)),
        Hold("h-1", "alice", 50, NOW + timedelta(minutes=2), to_partner="ridehail"),
    ])
    body = api.get("/v1/me/balance").json()
    assert (body["available"], body["held"], body["debt"]) == (650, 50, 0)
    assert body["expiring_30d"] == 50  # 100 - the 50 held
    assert body["expiring_90d"] == 250


def test_a_clawback_beyond_the_wallet_shows_as_debt(api: Api) -> None:
    """Earn through the pipeline, spend nothing, refund after the wallet was emptied by a
    hold: what the wallet cannot cover is debt."""
    api.earn([api.feed.purchase("p1", "alice", 10_000)])  # 100 + 100 first-swipe
    api.apply([Hold("h-all", "alice", 200, NOW + timedelta(minutes=2), to_partner="eshop")])
    api.earn([api.feed.refund("r1", "alice", "p1", 10_000)])
    body = api.get("/v1/me/balance").json()
    assert (body["available"], body["held"], body["debt"]) == (0, 200, 200)


def test_the_postgresql_fast_path_answers_exactly_as_the_fastapi_route(
    api: Api, migrated_url: str
) -> None:
    """On PostgreSQL the balance is served by points.api.fastpath; switched off, the FastAPI
    route gives byte-identical answers (success, 401, and the other customer's)."""
    api.apply([Earn("e-1", "alice", 120, NOW + timedelta(days=20)),
               Hold("h-1", "alice", 20, NOW + timedelta(minutes=2), to_partner="ridehail")])
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    requests = [bearer("alice"), bearer("bob"), {}, {"Authorization": "Bearer x.y.z"}]

    def answers() -> list[tuple[int, str, str, str | None]]:
        out = []
        for headers in requests:
            r = api.client.get("/v1/me/balance", headers=headers)
            out.append((r.status_code, r.headers["content-type"], r.text,
                        r.headers.get("www-authenticate")))
        return out

    fast = answers()
    reader, ctx.pg = ctx.pg, None
    try:
        plain = answers()
    finally:
        ctx.pg = reader
    assert fast == plain
    assert (reader is not None) == migrated_url.startswith("postgresql")
    assert fast[0][0] == 200 and fast[2][0] == 401
