"""Waiting out an outage (streams/runtime.py, streams/relay.py): retries with backoff for the
configured tolerance, WARNING lines that say what is awaited and for how long, and exit code
75 from every path that gives up (a batch, the outbox relay, its lease)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pytest

from points.outbox import OutboxMessage
from points.settings import load_settings
from streams.relay import OutboxRelay, register_relay
from streams.runtime import (
    EXIT_TEMPORARY_FAILURE,
    OutageWatch,
    RepeatedLogFilter,
    process_with_retry,
)
from streams.topics import ensure_topics_or_exit


class DatabaseDown(Exception):
    """What a batch raises while the database is away."""


class Exits:
    """A stand-in for ``os._exit`` that records the code instead of ending the test run."""

    def __init__(self) -> None:
        self.codes: list[int] = []

    def __call__(self, code: int) -> None:
        self.codes.append(code)


def failing(times: int, result: str = "committed") -> Callable[[list[int]], Any]:
    calls = {"n": 0}

    async def run(batch: list[int]) -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise DatabaseDown("connection refused")
        return result

    return run


def quick_watch(tolerance_s: float) -> OutageWatch:
    return OutageWatch(
        "the database to commit a batch",
        tolerance_s,
        report_every_s=0.05,
        first_delay_s=0.01,
        max_delay_s=0.02,
    )


async def test_a_batch_failing_within_the_tolerance_is_retried_until_it_commits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Five failures, then success: the result comes back, nothing exits, the outage was
    announced as a WARNING naming what was awaited, and its end too."""
    exits = Exits()
    with caplog.at_level(logging.WARNING, logger="streams.runtime"):
        result = await process_with_retry(
            failing(5), [1, 2], tolerance_s=10, exit_process=exits, watch=quick_watch(10)
        )
    assert result == "committed"
    assert exits.codes == []
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("waiting for the database to commit a batch (giving up after")
    assert "DatabaseDown: connection refused" in messages[0]
    assert messages[-1].startswith("the database to commit a batch is back after")


async def test_a_batch_failing_beyond_the_tolerance_exits_75_with_periodic_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Still failing after the tolerance: exit code 75, after repeated 'still waiting' lines
    that say how long the wait has lasted."""
    exits = Exits()
    with (
        caplog.at_level(logging.WARNING, logger="streams.runtime"),
        pytest.raises(SystemExit) as stopped,
    ):
        await process_with_retry(
            failing(10_000), [1], tolerance_s=0.3, exit_process=exits, watch=quick_watch(0.3)
        )
    assert exits.codes == [EXIT_TEMPORARY_FAILURE] and stopped.value.code == 75
    still = [r.getMessage() for r in caplog.records if "still waiting for" in r.getMessage()]
    assert len(still) >= 2, still
    assert all(" s of 0 s" in line for line in still)  # "<waited> s of <tolerance> s"
    assert "exiting with code 75" in caplog.records[-1].getMessage()


async def test_a_dead_lane_process_is_not_waited_for() -> None:
    """A broken process pool never recovers: exit 75 at once, without retrying."""
    exits = Exits()
    calls: list[int] = []

    async def run(batch: list[int]) -> str:
        calls.append(1)
        raise BrokenProcessPool("a child process terminated abruptly")

    with pytest.raises(SystemExit):
        await process_with_retry(run, [1], tolerance_s=60, exit_process=exits)
    assert exits.codes == [EXIT_TEMPORARY_FAILURE]
    assert calls == [1]


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    """Delays grow from the first to the cap, each drawn from the upper half of its step."""
    now = [0.0]
    watch = OutageWatch("x", 100, first_delay_s=0.2, max_delay_s=5.0, clock=lambda: now[0])
    delays = []
    for _ in range(10):
        watch.failed(DatabaseDown())
        delays.append(watch.next_delay_s())
    steps = [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps, strict=True)), delays


def test_the_default_tolerance_is_sixty_seconds() -> None:
    assert load_settings().worker.db_outage_tolerance_s == 60


class LeaseReleaseFails:
    """An outbox whose lease cannot be released (the database died during the round)."""

    def __init__(self, rows: int = 1) -> None:
        self.rows = [OutboxMessage(i, "t", b"k", b"v", {}, f"d{i}") for i in range(1, rows + 1)]
        self.marked: list[int] = []

    @contextlib.contextmanager
    def lease(self) -> Iterator[bool]:
        yield True
        raise DatabaseDown("server closed the connection unexpectedly")

    def pending_rows(self, limit: int) -> list[OutboxMessage]:
        return [r for r in self.rows if r.id not in self.marked][:limit]

    def mark_relayed(self, ids: list[int]) -> None:
        self.marked.extend(ids)


async def _acked(*_: Any) -> Any:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def test_a_lease_that_cannot_be_released_does_not_fail_the_round() -> None:
    """The lock is a session lock: a release that fails with its connection lost nothing.
    The round's rows are relayed and marked; no error leaves the relay."""
    store = LeaseReleaseFails(rows=3)
    relay = OutboxRelay(store, _acked)  # type: ignore[arg-type]
    assert await relay.drain() == 3
    assert store.marked == [1, 2, 3]


class FakeApp:
    """What register_relay uses of a faust app: the timer decorator, should_stop."""

    should_stop = False

    def __init__(self) -> None:
        self.timers: list[Callable[[], Any]] = []

    def timer(self, **_: Any) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        def register(fun: Callable[[], Any]) -> Callable[[], Any]:
            self.timers.append(fun)
            return fun

        return register


class DatabaseAway:
    """An outbox whose database refuses connections (taking the lease fails)."""

    def __init__(self) -> None:
        self.up = False

    @contextlib.contextmanager
    def lease(self) -> Iterator[bool]:
        if not self.up:
            raise DatabaseDown("connection refused")
        yield True

    def pending_rows(self, limit: int) -> list[OutboxMessage]:
        return []


async def test_the_relay_waits_for_the_database_then_exits_75(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An idle worker's only database work is the relay: its ticks fail while the database
    is away and are retried (warnings, no exit) until the tolerance is spent; then exit 75."""
    app, store, exits = FakeApp(), DatabaseAway(), Exits()
    register_relay(app, store, outage_tolerance_s=0.3, exit_process=exits)  # type: ignore[arg-type]
    (tick,) = app.timers
    with caplog.at_level(logging.WARNING, logger="streams.runtime"):
        await tick()
        assert exits.codes == []
        with pytest.raises(SystemExit):
            for _ in range(200):
                await tick()
                await asyncio.sleep(0.01)
    assert exits.codes == [EXIT_TEMPORARY_FAILURE]
    assert "waiting for the database (outbox relay)" in caplog.records[0].getMessage()


async def test_the_relay_resumes_when_the_database_returns_within_the_tolerance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Back before the tolerance is spent: no exit, the relay carries on and says so."""
    app, store, exits = FakeApp(), DatabaseAway(), Exits()
    register_relay(app, store, outage_tolerance_s=30, exit_process=exits)  # type: ignore[arg-type]
    (tick,) = app.timers
    back = "the database (outbox relay) is back after"
    with caplog.at_level(logging.WARNING, logger="streams.runtime"):
        for _ in range(5):
            await tick()
        store.up = True
        # Ticks are skipped until the backoff's retry time (jittered, and longer after each
        # failure a slow machine lets through): tick until the relay has tried again.
        deadline = time.monotonic() + 10
        while not caplog.records[-1].getMessage().startswith(back):
            assert time.monotonic() < deadline, "the relay never tried the database again"
            await tick()
            await asyncio.sleep(0.01)
    assert exits.codes == []


def test_a_worker_that_cannot_reach_the_broker_at_start_up_exits_75_after_the_tolerance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Checking the topics needs the broker: an unreachable one is waited for (warnings), then
    the start-up gives up with 75, not a traceback and 1."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = load_settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{port}"},
        worker={"db_outage_tolerance_s": 1.0},
    )
    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as stopped:
        ensure_topics_or_exit(settings)
    assert stopped.value.code == EXIT_TEMPORARY_FAILURE
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("waiting for the broker (to check the topics)") for m in messages)


def test_repeated_client_errors_are_let_through_once_per_interval_with_a_count() -> None:
    """The same template from the same logger: the first passes, the next within the interval
    are held back, and the first after it says how many were; other templates pass."""
    now = [0.0]
    limiter = RepeatedLogFilter(every_s=5.0, clock=lambda: now[0])

    def record(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("aiokafka.client", logging.ERROR, "f", 1, msg, args, None)

    passed = []
    for step in range(100):  # 10 s at 10 per second
        now[0] = step / 10
        r = record("Unable connect to node with id %s: %s", 1, "refused")
        if limiter.filter(r):
            passed.append(r.getMessage())
    assert passed == [
        "Unable connect to node with id 1: refused",
        "Unable connect to node with id 1: refused (and 49 more like it in 5 s)",
    ]
    assert limiter.filter(record("Unable to update metadata from %s", [1]))
    now[0] = 20.0
    later = record("Unable connect to node with id %s: %s", 1, "refused")
    assert limiter.filter(later)
    assert later.getMessage().endswith("refused (and 49 more like it in 5 s)")
    # A message without arguments (never %-formatted) keeps its literal percent sign.
    assert limiter.filter(record("50% of nodes down"))
    assert not limiter.filter(record("50% of nodes down"))
    now[0] = 26.0
    literal = record("50% of nodes down")
    assert limiter.filter(literal)
    assert literal.getMessage() == "50% of nodes down (and 1 more like it in 5 s)"


def test_the_last_attempt_falls_on_the_deadline_not_a_whole_delay_after_it() -> None:
    """With 5 s delays and a 3 s tolerance, the attempt after the one at 2.9 s comes at the
    deadline, so the wait ends at ~3 s rather than up to 5 s later."""
    now = [0.0]
    watch = OutageWatch("x", 3.0, first_delay_s=5.0, max_delay_s=5.0, clock=lambda: now[0])
    assert not watch.failed(DatabaseDown())
    now[0] = 2.9
    assert not watch.failed(DatabaseDown())
    assert watch.next_delay_s() == pytest.approx(0.11)
    now[0] = watch.retry_at
    assert watch.failed(DatabaseDown())
