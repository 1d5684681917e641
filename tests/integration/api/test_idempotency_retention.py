"""How long an Idempotency-Key replays: the API process purges stored keys older than
``POINTS_API__IDEMPOTENCY__RETENTION_HOURS`` in the background; a purged key runs the
request anew, a younger key still replays (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select

from points.api import idempotency
from points.api.settings import IdempotencySettings
from points.api.tables import idempotency_keys
from points.db import make_engine
from points.rules import load_ruleset

from .conftest import NOW, RULES, Api, Clock, TestClient, build_app

PATH = "/v1/me/earning-preview"
DINING = {
    "amount_minor": 8_850,
    "currency": "CNY",
    "mcc": "5812",
    "merchant_id": "m-9",
    "channel": "mobile",
}


@contextmanager
def running_api(url: str, idempotency_settings: IdempotencySettings) -> Iterator[Api]:
    """The API on ``url`` with these idempotency settings, its lifespan (and so its
    background purge) running while the block runs."""
    engine = make_engine(url)
    clock = Clock()
    app = build_app(url, engine, clock=clock, idempotency=idempotency_settings)
    try:
        with TestClient(app) as client:
            yield Api(engine=engine, client=client, ruleset=load_ruleset(RULES), clock=clock)
    finally:
        engine.dispose()


@pytest.fixture
def purging_api(migrated_url: str) -> Iterator[Api]:
    """The API with a 72 h retention purged every second (the first purge within a second)."""
    with running_api(
        migrated_url, IdempotencySettings(retention_hours=72, purge_interval_s=1)
    ) as api:
        yield api


def stored_keys(api: Api) -> set[str]:
    with api.engine.connect() as conn:
        return {str(r[0]) for r in conn.execute(select(idempotency_keys.c.idempotency_key))}


def wait_until_gone(api: Api, key: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while key in stored_keys(api):
        assert time.monotonic() < deadline, f"{key} was not purged within {timeout_s}s"
        time.sleep(0.05)


def test_a_key_past_the_retention_is_purged_and_then_runs_anew(purging_api: Api) -> None:
    """73 h after its first use the background purge deletes the key; the same key and
    body then run the request again (today's answer, no Idempotent-Replayed header) and
    are stored again. A key 25 h old is kept and still replays its first answer."""
    api = purging_api
    old = api.post(PATH, DINING, "old-key")
    assert old.json()["points"] == 277  # 177 + the first-swipe bonus
    api.clock.advance(hours=48)
    young = api.post(PATH, DINING, "young-key")
    api.earn([api.feed.purchase("p1", "alice", 1_000, at=NOW)])  # the bonus is gone now
    api.clock.advance(hours=25)  # old-key is 73 h old, young-key 25 h

    wait_until_gone(api, "old-key")
    assert "young-key" in stored_keys(api)

    again = api.post(PATH, DINING, "old-key")
    assert again.status_code == 200
    assert "idempotent-replayed" not in again.headers
    assert again.json()["points"] == 177
    assert "old-key" in stored_keys(api)

    replay = api.post(PATH, DINING, "young-key")
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == young.json()


def test_after_a_purge_the_key_is_free_for_another_request(purging_api: Api) -> None:
    """Past the retention, a key is forgotten entirely: reusing it for a different body is
    no longer ``idempotency_key_reused`` but a new request."""
    api = purging_api
    api.post(PATH, DINING, "reused")
    api.clock.advance(hours=73)
    wait_until_gone(api, "reused")
    other = api.post(PATH, {**DINING, "amount_minor": 1_000}, "reused")
    assert other.status_code == 200
    assert other.json()["points"] == 120  # 20 + the first-swipe bonus, not the stored 277


def test_with_the_interval_at_zero_the_api_purges_nothing(migrated_url: str) -> None:
    """``purge_interval_s=0`` turns the background purge off (the CLI is then the only
    purge): an expired key still replays."""
    settings = IdempotencySettings(retention_hours=1, purge_interval_s=0)
    with running_api(migrated_url, settings) as api:
        first = api.post(PATH, DINING, "kept")
        api.clock.advance(hours=5)
        time.sleep(0.5)
        replay = api.post(PATH, DINING, "kept")
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()


def test_a_purge_deletes_at_most_one_chunk_per_call_oldest_first(api: Api) -> None:
    """``purge_chunk`` takes the oldest expired keys first and never more than its limit;
    keys at or after the cutoff are never taken."""
    for hours in (100, 90, 80, 72, 1):
        api.clock.now = NOW - timedelta(hours=hours)
        assert api.post(PATH, DINING, f"k-{hours}h").status_code == 200
    api.clock.now = NOW
    cutoff = idempotency.retention_cutoff(NOW, 72)
    with api.engine.begin() as conn:
        assert idempotency.count_expired(conn, cutoff) == 3
        assert idempotency.purge_chunk(conn, cutoff, limit=2) == 2
    assert stored_keys(api) == {"k-80h", "k-72h", "k-1h"}
    with api.engine.begin() as conn:
        assert idempotency.purge_chunk(conn, cutoff, limit=2) == 1
        assert idempotency.purge_chunk(conn, cutoff, limit=2) == 0
    assert stored_keys(api) == {"k-72h", "k-1h"}


def test_concurrent_purges_on_postgresql_skip_each_others_rows(fresh_pg_url: str) -> None:
    """Two purges at once (two API workers, or one and the cron job) do not wait for each
    other: the second skips the rows the first has claimed and takes the rest."""
    from points.migrate import upgrade

    upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    response = idempotency.StoredResponse("0" * 64, 200, "{}", "application/json")
    try:
        with engine.begin() as conn:
            for i in range(5):
                idempotency.store(
                    conn,
                    "c1",
                    f"k-{i}",
                    method="POST",
                    route="/v1/x",
                    response=response,
                    now=NOW - timedelta(hours=100 - i),
                )
        cutoff = idempotency.retention_cutoff(NOW, 72)
        with engine.connect() as first, engine.connect() as second:
            first.begin()
            assert idempotency.purge_chunk(first, cutoff, limit=2) == 2  # k-0, k-1 held
            second.begin()
            second.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            assert idempotency.purge_chunk(second, cutoff, limit=10) == 3
            second.commit()
            first.commit()
        with engine.connect() as conn:
            assert idempotency.count_expired(conn, cutoff) == 0
    finally:
        engine.dispose()
