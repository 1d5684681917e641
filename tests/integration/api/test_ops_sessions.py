"""The /ops login is a session per login (issue 12, finding 9): a random cookie each time,
stored hashed in the database (so every API process knows it), expiring when idle and at an
absolute limit, revoked by logout; any wrong token, however long, is 401."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from points.api.tables import ops_sessions
from points.db import make_engine
from points.settings import DatabaseSettings, KafkaSettings, Settings

from .conftest import (
    PARTNERS,
    RULES,
    Clock,
    TestClient,
    api_settings,
    assert_problem,
)

TOKEN = "ops-token-for-session-tests-0123456789"
SUMMARY = "/ops/api/summary"


def ops_app(url: str, engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch,
            **env: str) -> Any:
    from points.api.app import create_app
    from points.rules import load_ruleset

    monkeypatch.setenv("POINTS_API__OPS_TOKEN", TOKEN)
    monkeypatch.setenv("POINTS_API__OPS_LAG_TIMEOUT_S", "0.2")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(database=DatabaseSettings(url=url),
                        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    return create_app(settings, api_settings(), engine=engine, ruleset=load_ruleset(RULES),
                      partners=PARTNERS, clock=clock, environ={})


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(migrated_url: str, engine: Engine, clock: Clock,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with TestClient(ops_app(migrated_url, engine, clock, monkeypatch)) as c:
        yield c


def login(client: TestClient) -> str:
    """Log in; the session cookie's value (the client keeps no cookie: each test says which
    cookie it sends)."""
    response = client.get("/ops/login", params={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303, response.text
    cookie: str = response.cookies["points_ops"]
    client.cookies.clear()
    return cookie


def summary(client: TestClient, cookie: str) -> Any:
    client.cookies.clear()
    response = client.get(SUMMARY, headers={"Cookie": f"points_ops={cookie}"})
    client.cookies.clear()
    return response


def test_two_logins_get_two_different_random_cookies(client: TestClient, engine: Engine) -> None:
    """Each login is its own session: the cookies differ, neither is the token nor derived
    from it alone, both open the summary, and the database holds only their SHA-256."""
    first, second = login(client), login(client)
    assert first != second
    assert TOKEN not in first and TOKEN not in second
    assert summary(client, first).status_code == 200
    assert summary(client, second).status_code == 200
    with engine.connect() as conn:
        stored = set(conn.execute(select(ops_sessions.c.session_hash)).scalars())
    assert stored == {hashlib.sha256(c.encode()).hexdigest() for c in (first, second)}


def test_logout_revokes_the_session_on_the_server(client: TestClient) -> None:
    """After /ops/logout the cookie is dead even for a client that kept a copy; the other
    login's session lives on."""
    kept, other = login(client), login(client)
    client.cookies.clear()
    response = client.get("/ops/logout", headers={"Cookie": f"points_ops={kept}"},
                          follow_redirects=False)
    assert response.status_code == 303
    assert 'points_ops=""' in response.headers["set-cookie"] or \
        "max-age=0" in response.headers["set-cookie"].lower()
    assert_problem(summary(client, kept), 401, "unauthenticated")
    assert summary(client, other).status_code == 200


def test_a_session_expires_after_the_idle_time(client: TestClient, clock: Clock) -> None:
    """Default idle limit 8 h, counted from the last use: of two logins made together, the one
    used at 7 h still opens the page at 8 h; the unused one does not."""
    used, idle = login(client), login(client)
    clock.advance(hours=7)
    assert summary(client, used).status_code == 200
    clock.advance(hours=1)
    assert summary(client, used).status_code == 200
    assert_problem(summary(client, idle), 401, "unauthenticated")


def test_a_session_ends_at_the_absolute_limit_however_used(
    client: TestClient, clock: Clock
) -> None:
    """Default absolute limit 12 h after the login, even when used every hour."""
    cookie = login(client)
    for _ in range(11):
        clock.advance(hours=1)
        assert summary(client, cookie).status_code == 200
    clock.advance(minutes=59)
    assert summary(client, cookie).status_code == 200
    clock.advance(minutes=1)
    assert_problem(summary(client, cookie), 401, "unauthenticated")


def test_the_limits_and_the_secure_flag_are_settings(
    migrated_url: str, engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POINTS_API__OPS_SESSION_IDLE_S / _MAX_S set the limits (the cookie's Max-Age is the
    absolute one); POINTS_API__OPS_COOKIE_SECURE marks the cookie Secure even over plain HTTP
    (behind a TLS-terminating proxy)."""
    app = ops_app(migrated_url, engine, clock, monkeypatch,
                  POINTS_API__OPS_SESSION_IDLE_S="600", POINTS_API__OPS_SESSION_MAX_S="3600",
                  POINTS_API__OPS_COOKIE_SECURE="true")
    with TestClient(app) as client:
        response = client.get("/ops/login", params={"token": TOKEN}, follow_redirects=False)
        header = response.headers["set-cookie"].lower()
        for attribute in ("httponly", "samesite=strict", "path=/ops", "secure",
                          "max-age=3600"):
            assert attribute in header, header
        cookie = response.cookies["points_ops"]
        clock.advance(seconds=599)
        assert summary(client, cookie).status_code == 200
        clock.advance(seconds=600)
        assert_problem(summary(client, cookie), 401, "unauthenticated")


def test_over_plain_http_the_cookie_is_not_secure_by_default(client: TestClient) -> None:
    """Local development over http: HttpOnly, SameSite=Strict, /ops, 12 h, no Secure."""
    response = client.get("/ops/login", params={"token": TOKEN}, follow_redirects=False)
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "max-age=43200" in header
    assert "secure" not in header


def test_a_session_from_one_api_process_opens_another(
    migrated_url: str, engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions live in the database: a login on one app is honoured by a second app on the
    same ledger, and a logout on the second ends it on the first."""
    first = ops_app(migrated_url, engine, clock, monkeypatch)
    second = ops_app(migrated_url, engine, clock, monkeypatch)
    with TestClient(first) as one, TestClient(second) as two:
        cookie = login(one)
        assert summary(two, cookie).status_code == 200
        two.get("/ops/logout", headers={"Cookie": f"points_ops={cookie}"},
                follow_redirects=False)
        assert_problem(summary(one, cookie), 401, "unauthenticated")


@pytest.mark.parametrize("wrong", ["x", TOKEN[:-1], TOKEN + "x", "y" * 513, "z" * 10_000])
def test_any_wrong_token_is_401(client: TestClient, wrong: str) -> None:
    """Short, near, long or very long: the same 401 with the ops realm; no cookie."""
    response = client.get("/ops/login", params={"token": wrong}, follow_redirects=False)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="points-ops"'
    assert "set-cookie" not in response.headers
    bearer = client.get(SUMMARY, headers={"Authorization": f"Bearer {wrong}"})
    assert_problem(bearer, 401, "unauthenticated")


@pytest.mark.parametrize("forged", ["", "not-a-session", "A" * 43, "0" * 64])
def test_a_forged_cookie_is_401(client: TestClient, forged: str) -> None:
    """Only a session the server started opens the page."""
    login(client)
    assert_problem(summary(client, forged), 401, "unauthenticated")


def test_expired_sessions_are_deleted_at_the_next_login(
    client: TestClient, engine: Engine, clock: Clock
) -> None:
    """The table does not grow with every login ever made."""
    login(client)
    login(client)
    clock.advance(hours=13)
    fresh = login(client)
    with engine.connect() as conn:
        stored = list(conn.execute(select(ops_sessions.c.session_hash)).scalars())
    assert stored == [hashlib.sha256(fresh.encode()).hexdigest()]
