"""The API's PostgreSQL reader keeps its connections healthy (``psycopg_pool`` underneath):
a connection the server dropped is replaced before a request gets it, old connections are
replaced, and every connection carries the statement timeout, reads instants in UTC and
json as values."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from points.api.pgread import PgReader

BACKEND_PID = "SELECT pg_backend_pid()"


@pytest.fixture
async def open_reader(pg_url: str) -> AsyncIterator[Callable[..., PgReader]]:
    made: list[PgReader] = []

    def reader(**options: float) -> PgReader:
        # one connection: a changed backend pid means the connection was replaced
        made.append(PgReader(make_url(pg_url), size=1, **options))  # type: ignore[arg-type]
        return made[-1]

    yield reader
    for each in made:
        await each.close()


async def _backend(reader: PgReader) -> int:
    ((pid,),) = await reader.fetch(BACKEND_PID, {})
    return int(pid)


def _terminate(pg_url: str, pid: int) -> None:
    conninfo = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


async def test_a_connection_the_server_dropped_is_replaced_before_a_request_gets_it(
    pg_url: str, open_reader: Callable[..., PgReader]
) -> None:
    """The health check pings a connection that sat idle (here: any) before handing it out;
    a dead one is discarded and the request is served on a fresh connection, without error."""
    reader = open_reader(check_idle_s=0.0)
    first = await _backend(reader)
    _terminate(pg_url, first)
    second = await _backend(reader)
    assert second != first


async def test_only_a_connection_idle_for_a_while_is_pinged(
    open_reader: Callable[..., PgReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back-to-back reads reuse the connection without a ping (a ping per read would double
    the round trips of the balance hot path); one idle longer than ``check_idle_s`` is pinged."""
    pings: list[object] = []
    ping = AsyncConnectionPool.check_connection

    async def counted(conn: psycopg.AsyncConnection[Any]) -> None:
        pings.append(conn)
        await ping(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counted))
    reader = open_reader(check_idle_s=0.3)
    pid = await _backend(reader)
    assert len(pings) == 1  # a new connection is checked once
    for _ in range(5):
        assert await _backend(reader) == pid
    assert len(pings) == 1
    await asyncio.sleep(0.4)  # idle past check_idle_s
    assert await _backend(reader) == pid
    assert len(pings) == 2


async def test_a_connection_past_its_lifetime_is_replaced(
    open_reader: Callable[..., PgReader]
) -> None:
    """A connection older than ``max_lifetime_s`` is closed when it comes back and a new one
    takes its place."""
    reader = open_reader(max_lifetime_s=0.5)
    first = await _backend(reader)
    deadline = time.monotonic() + 20
    while (pid := await _backend(reader)) == first:
        assert time.monotonic() < deadline, "the connection was never replaced"
    assert pid != first


async def test_every_connection_carries_the_statement_timeout(
    open_reader: Callable[..., PgReader]
) -> None:
    """A runaway balance query is cut by the server after the statement timeout (5 s)."""
    reader = open_reader()
    assert await reader.fetch("SHOW statement_timeout", {}) == [("5s",)]


async def test_every_connection_reads_instants_in_utc_and_json_as_values(
    open_reader: Callable[..., PgReader]
) -> None:
    """A timestamp comes back as the same instant with a zero UTC offset whatever offset it
    was written with, and a json value as Python values (the activity page reads both)."""
    reader = open_reader()
    ((at, value),) = await reader.fetch(
        """SELECT timestamptz '2026-11-27 13:00:00.5+01', '{"a": [1, null, "x"]}'::json""", {})
    assert at == datetime(2026, 11, 27, 12, 0, 0, 500_000, tzinfo=UTC)
    assert at.utcoffset() == timedelta(0)
    assert value == {"a": [1, None, "x"]}
