"""The earning worker when things go away: its own parent process (kill -9), PostgreSQL (a
restart within the tolerance, an outage beyond it), and topics that could not be created.

Real processes on the stack: the worker is a subprocess, PostgreSQL is stopped and started with
``python -m devstack`` (this stack's ports only), the lane processes are found through /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.runtime import EXIT_TEMPORARY_FAILURE
from streams.topics import EXIT_TOPICS_UNUSABLE, TopicsUnusable, ensure_topics_sync
from tests.integration.streams import scenario
from tests.integration.streams.outages import alive, children_of, kafka_down, postgres_down
from tests.integration.streams.support import (
    StreamEnv,
    Worker,
    encode,
    new_stream_env,
    produce_sync,
    purchase,
    wait_until,
)
from tests.integration.streams.test_earning_worker import (
    assert_same_ledger,
    counts,
    publish_day,
    publish_profiles_and_wait,
    reference_run,
)

LANES = 2  # the default POINTS_WORKER__DB_LANES, each a child process


def lane_processes(worker: Worker) -> dict[tuple[int, str], str]:
    assert worker.process is not None
    children = children_of(worker.process.pid)
    return {pid: cmd for pid, cmd in children.items() if "multiprocessing.spawn" in cmd}


def start_and_wait_for_lanes(env: StreamEnv, log: Path) -> Worker:
    """A worker that has committed a first batch (so it runs its lanes on any version)."""
    worker = Worker(env, log).start()
    produce_sync(
        env.bootstrap,
        env.topic("bank_transactions"),
        [(f"c{n}".encode(), encode(purchase(f"warm-{n}", f"c{n}"))) for n in range(8)],
    )
    wait_until(lambda: counts(env.database_url)[0] >= 8, 120, "a first batch", worker.log_tail)
    wait_until(lambda: len(lane_processes(worker)) == LANES, 30, "lanes", worker.log_tail)
    return worker


def wait_for_exit(worker: Worker, timeout_s: float) -> int:
    assert worker.process is not None
    try:
        return worker.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running after {timeout_s}s\n{worker.log_tail()}") from None


def assert_none_survives(children: dict[tuple[int, str], str], worker: Worker) -> None:
    assert children, "the worker had no child processes: the test proved nothing"
    wait_until(
        lambda: not any(alive(child) for child in children),
        10,
        "every child process of the dead worker to end",
        lambda: (
            "survivors: "
            + repr([cmd for child, cmd in children.items() if alive(child)])
            + "\n"
            + worker.log_tail()
        ),
    )


@contextlib.contextmanager
def reaped(worker: Worker) -> Iterator[Worker]:
    """Whatever the test does, no process of the worker's group outlives it."""
    try:
        yield worker
    finally:
        assert worker.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=30)


def test_kill_9_of_the_worker_alone_ends_its_lane_processes(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """SIGKILL to the worker's pid only (as an OOM killer or a supervisor does, not to its
    process group): within seconds no child of it is left, lanes or otherwise."""
    worker = start_and_wait_for_lanes(stream_env, tmp_path / "worker.log")
    with reaped(worker):
        assert worker.process is not None
        children = children_of(worker.process.pid)
        os.kill(worker.process.pid, signal.SIGKILL)
        assert wait_for_exit(worker, 30) == -signal.SIGKILL
        assert_none_survives(children, worker)


def test_a_postgres_restart_within_the_tolerance_is_waited_out_and_the_ledger_is_exact(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """PostgreSQL stopped for ~10 s mid-run (default tolerance 60 s): the worker keeps running,
    says every few seconds what it waits for, and afterwards the ledger equals an undisturbed
    run's (nothing lost, nothing twice)."""
    day = scenario.build(seed=23, customers=300, purchases=20_000)
    expected = reference_run(tmp_path, stream_env, day)
    worker = Worker(stream_env, tmp_path / "worker.log").start()
    with reaped(worker):
        total = publish_day(stream_env, day, worker)
        wait_until(
            lambda: counts(stream_env.database_url)[0] >= len(day.profiles) + 2_000,
            120,
            "the run under way",
            worker.log_tail,
        )
        with postgres_down():
            time.sleep(10)
            assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        wait_until(
            lambda: counts(stream_env.database_url) == (total, day.malformed),
            180,
            "every event applied after the outage",
            worker.log_tail,
        )
        log = worker.log()
        assert "waiting for the database to commit a batch" in log, worker.log_tail()
        assert "still waiting for the database" in log, worker.log_tail()
        assert worker.stop() == 0, worker.log_tail()
    assert_same_ledger(stream_env.database_url, expected)


def test_a_broker_restart_mid_run_is_waited_out_and_the_ledger_is_exact(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """The broker stopped for ~10 s mid-run and started again: the worker keeps running,
    reconnects by itself and finishes with the ledger of an undisturbed run; the client's
    connection errors are a line every few seconds, not a flood (thousands a second)."""
    day = scenario.build(seed=31, customers=300, purchases=20_000)
    expected = reference_run(tmp_path, stream_env, day)
    worker = Worker(stream_env, tmp_path / "worker.log").start()
    with reaped(worker):
        total = publish_day(stream_env, day, worker)
        wait_until(
            lambda: counts(stream_env.database_url)[0] >= len(day.profiles) + 2_000,
            120,
            "the run under way",
            worker.log_tail,
        )
        with kafka_down():
            time.sleep(10)
            assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        wait_until(
            lambda: counts(stream_env.database_url) == (total, day.malformed),
            240,
            "every event applied after the broker restart",
            worker.log_tail,
        )
        assert worker.process.poll() is None, worker.log_tail()
        assert worker.stop() == 0, worker.log_tail()
        refused = [line for line in worker.log().splitlines() if "Connect call failed" in line]
        assert 0 < len(refused) < 50, f"{len(refused)} connection error lines"
    assert_same_ledger(stream_env.database_url, expected)


def test_an_outage_beyond_the_tolerance_mid_run_exits_75_and_leaves_no_lane_process(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """With a 3 s tolerance and PostgreSQL gone for longer, mid-run: the worker exits with the
    documented code 75, none of its children survives its own exit, and a restarted worker
    finishes the day with the exact ledger."""
    stream_env.extra_env["POINTS_WORKER__DB_OUTAGE_TOLERANCE_S"] = "3"
    day = scenario.build(seed=29, customers=300, purchases=20_000)
    expected = reference_run(tmp_path, stream_env, day)
    log = tmp_path / "worker.log"
    worker = Worker(stream_env, log).start()
    with reaped(worker):
        publish_profiles_and_wait(stream_env, day, worker)
        produce_sync(stream_env.bootstrap, stream_env.topic("bank_transactions"), day.transactions)
        wait_until(
            lambda: counts(stream_env.database_url)[0] >= len(day.profiles) + 2_000,
            120,
            "the run under way",
            worker.log_tail,
        )
        assert worker.process is not None
        children = children_of(worker.process.pid)
        with postgres_down():
            assert wait_for_exit(worker, 60) == EXIT_TEMPORARY_FAILURE, worker.log_tail()
            assert_none_survives(children, worker)
        assert "exiting with code 75" in worker.log(), worker.log_tail()
    restarted = Worker(stream_env, log).start()
    with reaped(restarted):
        total = len(day.profiles) + day.distinct_valid_transactions
        wait_until(
            lambda: counts(stream_env.database_url) == (total, day.malformed),
            180,
            "every event applied after the restart",
            restarted.log_tail,
        )
        assert restarted.stop() == 0, restarted.log_tail()
    assert_same_ledger(stream_env.database_url, expected)


def test_an_idle_worker_holding_the_relay_lease_exits_75_when_the_database_stays_away(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """No batch in flight, only the outbox relay (the group leader's, holding the lease each
    round) touches the database: it waits the tolerance out too, then exits 75, not 1."""
    stream_env.extra_env["POINTS_WORKER__DB_OUTAGE_TOLERANCE_S"] = "3"
    worker = start_and_wait_for_lanes(stream_env, tmp_path / "worker.log")
    with reaped(worker):
        assert worker.process is not None
        children = children_of(worker.process.pid)
        with postgres_down():
            assert wait_for_exit(worker, 60) == EXIT_TEMPORARY_FAILURE, worker.log_tail()
            assert_none_survives(children, worker)
        log = worker.log()
        assert "waiting for the database (outbox relay)" in log, worker.log_tail()
        assert "exiting with code 75" in log, worker.log_tail()


def test_a_worker_refuses_to_run_when_a_topic_could_not_be_created(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """The broker refuses to create one required topic (here: a name it finds invalid): the
    worker does not start consuming; it exits 78 with one line naming the topic and why."""
    bad = f"t{stream_env.suffix} dlq"  # a space: not a legal topic name
    stream_env.extra_env["POINTS_KAFKA__TOPICS__POINTS_DLQ"] = bad
    worker = Worker(stream_env, tmp_path / "worker.log").start()
    with reaped(worker):
        assert wait_for_exit(worker, 90) == EXIT_TOPICS_UNUSABLE, worker.log_tail()
        lines = [line for line in worker.log().splitlines() if "CRITICAL" in line]
        assert len(lines) == 1, worker.log_tail()
        assert bad in lines[0] and "InvalidTopic" in lines[0], lines[0]
        assert "created topics" not in worker.log()


def test_existing_topics_with_fewer_partitions_than_configured_are_refused(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Topics that exist with 2 partitions while 4 are configured: ensure_topics names each
    one and its partition count instead of letting a worker run on them."""
    small = new_stream_env(kafka_bootstrap, f"sqlite:///{tmp_path / 'unused.sqlite3'}", 2)
    configured = StreamEnv(small.suffix, small.bootstrap, small.database_url, partitions=4)
    with pytest.raises(TopicsUnusable) as refused:
        ensure_topics_sync(configured.settings())
    assert set(refused.value.problems) == {
        small.topic(name)
        for name in ("bank_transactions", "bank_customers", "customer_activity",
                     "points_ledger", "points_dlq")
    }  # fmt: skip
    assert all("2 partitions" in why for why in refused.value.problems.values())
