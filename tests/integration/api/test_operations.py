"""Health, readiness, metrics, rate limits, and errors on unknown routes and methods."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine

from points.api.settings import RateLimitSettings

from .conftest import Api, TestClient, assert_problem, bearer, build_app


def test_health_and_ready_answer_without_a_token(api: Api) -> None:
    """Liveness is unconditional; readiness asks the database."""
    assert api.client.get("/health").json() == {"status": "ok"}
    assert api.client.get("/ready").json() == {"status": "ready"}


def test_ready_is_503_when_the_database_is_unreachable(migrated_url: str) -> None:
    """A ledger that does not answer makes /ready a 503 problem (and /health stays 200)."""
    dead = create_engine("postgresql+psycopg://nobody:x@127.0.0.1:1/none",
                         connect_args={"connect_timeout": 1})
    app = build_app(migrated_url, dead)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert_problem(client.get("/ready"), 503, "not_ready")
    dead.dispose()


def test_metrics_count_requests_by_route_template_and_status(api: Api) -> None:
    """Prometheus text with counters and latency histograms labelled by route and status;
    unknown paths are one 'unmatched' label, not one per path."""
    api.get("/v1/me/balance")
    api.get("/v1/me/activity", cursor="!!!")
    api.client.get("/v1/no/such/path/123")
    text = api.client.get("/metrics").text
    assert ('points_api_requests_total{method="GET",route="/v1/me/balance",status="200"} 1.0'
            in text)
    assert 'route="/v1/me/activity",status="422"' in text
    assert 'route="unmatched",status="404"' in text
    assert "points_api_request_duration_seconds_bucket" in text
    assert "/v1/no/such/path/123" not in text


def test_a_customer_over_the_rate_limit_gets_429_with_retry_after(migrated_url: str) -> None:
    """Burst 3 at 0.5/s: the 4th request is refused with Retry-After; another customer is
    not affected."""
    from points.db import make_engine

    engine = make_engine(migrated_url)
    app = build_app(migrated_url, engine,
                    rate_limit=RateLimitSettings(rate_per_s=0.5, burst=3))
    with TestClient(app) as client:
        codes = [client.get("/v1/me/balance", headers=bearer("alice")).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 200]
        refused = client.get("/v1/me/balance", headers=bearer("alice"))
        assert_problem(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "2"
        assert client.get("/v1/me/balance", headers=bearer("bob")).status_code == 200
    engine.dispose()


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    """404 and 405 come back as problem details like every other error."""
    assert_problem(api.client.get("/v2/me/balance", headers=bearer()), 404, "not_found")
    response: Any = api.client.delete("/v1/me/balance", headers=bearer())
    assert_problem(response, 405, "method_not_allowed")
