"""The /ops routes in the API (SQLite and PostgreSQL): the operator token (bearer or the
login cookie) and nothing else opens them, customers' JWTs included; the summary has every
section and degrades section by section (Kafka down, a table missing) instead of failing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, text

from points.api.app import load_partners
from points.db import make_engine
from points.settings import DatabaseSettings, KafkaSettings, Settings
from tests.integration.api.conftest import ROOT as API_ROOT
from tests.integration.api.conftest import (
    TestClient,
    api_settings,
    assert_problem,
    bearer,
)

from .seeding import RULES, seed_day

TOKEN = "ops-token-for-tests-0123456789abcdef"
SECTIONS = {"generated_at", "lag", "events", "points", "swaps", "referrals", "dlq", "verify",
            "campaigns", "lifecycle", "packets", "took_ms"}


def _app(url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, token: str | None = TOKEN,
         bootstrap: str = "127.0.0.1:1") -> Any:
    from points.api.app import create_app
    from points.rules import load_ruleset

    if token is None:
        monkeypatch.delenv("POINTS_API__OPS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("POINTS_API__OPS_TOKEN", token)
    monkeypatch.setenv("POINTS_API__OPS_LAG_TIMEOUT_S", "0.5")
    settings = Settings(database=DatabaseSettings(url=url),
                        kafka=KafkaSettings(bootstrap_servers=bootstrap))
    return create_app(settings, api_settings(), engine=engine, ruleset=load_ruleset(RULES),
                      partners=load_partners(API_ROOT / "config" / "partners.yaml"))


@pytest.fixture
def ops(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Engine]]:
    """The API with the operator token set, over a small seeded day; Kafka unreachable."""
    engine = make_engine(migrated_url)
    seed_day(engine, customers=60, transactions=300)
    with TestClient(_app(migrated_url, engine, monkeypatch)) as client:
        yield client, engine
    engine.dispose()


def test_ops_is_off_without_an_operator_token(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No POINTS_API__OPS_TOKEN: every /ops route is 503 not_configured, whatever is sent."""
    engine = make_engine(migrated_url)
    with TestClient(_app(migrated_url, engine, monkeypatch, token=None)) as client:
        for path in ("/ops", "/ops/api/summary", "/ops/login?token=anything"):
            assert_problem(client.get(path, headers=bearer()), 503, "not_configured")
    engine.dispose()


def test_a_short_operator_token_refuses_to_start(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guessable token is a configuration error at start, not a weak dashboard."""
    engine = make_engine(migrated_url)
    with pytest.raises(ValidationError, match="at least 24 characters"):
        _app(migrated_url, engine, monkeypatch, token="short")
    engine.dispose()


def test_only_the_operator_token_opens_ops(ops: tuple[TestClient, Engine]) -> None:
    """Nothing, a customer's valid JWT, or a wrong token: 401 with the ops realm; the
    operator token as a bearer: the page and the summary."""
    client, _ = ops
    for headers in ({}, bearer("alice"), {"Authorization": "Bearer " + TOKEN[:-1] + "x"},
                    {"Authorization": "Basic " + TOKEN}):
        for path in ("/ops", "/ops/api/summary"):
            response = client.get(path, headers=headers)
            assert_problem(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"] == 'Bearer realm="points-ops"'
    page = client.get("/ops", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for canvas in ("events", "lag", "rules", "campaigns", "swaps", "referrals", "dlq",
                   "lifecycle"):
        assert f'id="chart-{canvas}"' in page.text
    assert '<script src="/ops/static/chart.umd.min.js">' in page.text
    assert "cdn" not in page.text.lower()
    summary = client.get("/ops/api/summary", headers={"Authorization": f"Bearer {TOKEN}"})
    assert summary.status_code == 200 and set(summary.json()) == SECTIONS


def test_login_sets_a_cookie_that_opens_ops(ops: tuple[TestClient, Engine]) -> None:
    """A wrong token sets nothing; the right one redirects to /ops with an HttpOnly,
    SameSite=Strict cookie scoped to /ops that is not the token itself; logout clears it."""
    client, _ = ops
    assert_problem(client.get("/ops/login", params={"token": "nope"}), 401, "unauthenticated")
    assert not client.cookies
    response = client.get("/ops/login", params={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ops"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("points_ops=")
    assert TOKEN not in cookie
    for attribute in ("HttpOnly", "Path=/ops", "SameSite=strict", "Max-Age=43200"):
        assert attribute.lower() in cookie.lower(), cookie
    assert client.get("/ops").status_code == 200
    assert client.get("/ops/api/summary").status_code == 200
    client.get("/ops/logout", follow_redirects=False)
    assert client.get("/ops").status_code == 401


def test_summary_has_every_section_of_the_seeded_day(ops: tuple[TestClient, Engine]) -> None:
    """Events by topic, points by rule and campaign, swap and referral funnels, the red packets'
    fission funnel by generation, dead letters by reason, a clean verify; Kafka is
    unreachable here, so lag says unavailable."""
    client, _ = ops
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = client.get("/ops/api/summary", headers=headers).json()
    assert body["events"]["status"] == "ok"
    assert set(body["events"]["totals"]) == {
        "bank.customers", "bank.transactions", "customer.activity"}
    assert body["points"]["status"] == "ok" and body["points"]["total"] > 0
    assert body["points"]["by_campaign"]
    assert body["swaps"]["partners"]["eshop"]["completed"] == 40
    assert body["referrals"]["counts"]["rewarded"] == 14
    packets = body["packets"]  # seeding.seed_packets: three senders, two generations
    assert packets["status"] == "ok", packets
    assert [(g["generation"], g["sent"], g["opened"], g["claimed"], g["new_customers"])
            for g in packets["generations"]] == [(0, 3, 27, 21, 3), (1, 3, 3, 3, 3)]
    assert {r["reason_code"] for r in body["dlq"]["reasons"]} >= {"invalid_json",
                                                                   "key_mismatch"}
    assert body["lag"]["status"] in ("unavailable", "pending")
    for _ in range(20):  # verify runs in its thread; the page polls until it is there
        if body["verify"]["status"] != "running" and body["lag"]["status"] != "pending":
            break
        body = client.get("/ops/api/summary", headers=headers).json()
    assert body["verify"]["status"] == "ok" and body["verify"]["violation_count"] == 0
    assert body["lag"]["status"] == "unavailable" and body["lag"]["error"]


def test_campaign_uplift_panel_shows_what_the_cli_reports(
    ops: tuple[TestClient, Engine], migrated_url: str
) -> None:
    """The dashboard's campaign section holds, for every campaign of the rule set with a
    holdout (rules/default.yaml: young-lifestyle-2026, long-tail-groceries), the same report
    as `points-ledger --json campaigns report ID`; the page has its panel."""
    from tests.integration.cli.support import cli_json

    client, _ = ops
    headers = {"Authorization": f"Bearer {TOKEN}"}
    section = client.get("/ops/api/summary", headers=headers).json()["campaigns"]
    assert section["status"] == "ok", section
    by_id = {c["campaign"]: c for c in section["campaigns"]}
    assert list(by_id) == ["young-lifestyle-2026", "long-tail-groceries"]
    for campaign_id, shown in by_id.items():
        reported = cli_json(migrated_url, "campaigns", "report", campaign_id, "--rules", str(RULES))
        assert shown == reported
    assert by_id["young-lifestyle-2026"]["treated"]["customers"] > 0
    assert "Campaign uplift" in client.get("/ops", headers=headers).text


def test_lifecycle_panel_counts_customers_per_stage(
    ops: tuple[TestClient, Engine], migrated_url: str, tmp_path: Path
) -> None:
    """The dashboard's lifecycle section counts every customer with an event once, per stage,
    as of the newest event day; the same stage `points-ledger customer show` prints."""
    from tests.integration.cli.support import cli_json

    client, _ = ops
    headers = {"Authorization": f"Bearer {TOKEN}"}
    section = client.get("/ops/api/summary", headers=headers).json()["lifecycle"]
    assert section["status"] == "ok", section
    assert set(section["stages"]) == {"new", "active", "at_risk", "dormant", "reactivated"}
    assert section["customers"] == sum(section["stages"].values()) > 0
    out = tmp_path / "profiles.csv"
    exported = cli_json(migrated_url, "customer", "export", "--out", str(out),
                        "--rules", str(RULES))
    assert exported["rows"] == section["customers"] and exported["as_of"] == section["as_of"]
    assert "Customers, by lifecycle stage" in client.get("/ops", headers=headers).text


def test_a_broken_section_does_not_fail_the_summary(ops: tuple[TestClient, Engine]) -> None:
    """Without the swaps table the swap section says error; the others still answer."""
    client, engine = ops
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE swaps"))
    body = client.get("/ops/api/summary", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert body["swaps"]["status"] == "error" and "swaps" in body["swaps"]["error"]
    assert body["referrals"]["status"] == "ok" and body["events"]["status"] == "ok"


def test_the_chart_library_is_served_from_the_repository(ops: tuple[TestClient, Engine]) -> None:
    """Chart.js comes from points/api/static (no CDN), without a token; /ops stays out of the
    customer API's OpenAPI document."""
    client, _ = ops
    response = client.get("/ops/static/chart.umd.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.text.startswith("/*!\n * Chart.js v4.")
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ops")]
