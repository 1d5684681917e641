"""The local stack's PostgreSQL comes back after a crash, however long its WAL replay takes.

A machine that dies with the stack running (a killed CI box, a laptop losing power) leaves a
data directory that PostgreSQL must replay before it accepts connections; with the stack's
max_wal_size of 4GB that replay can outlast pg_ctl's start timeout. `devstack up` then waits
for the replay instead of failing the run (a CI run once failed exactly so).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from devstack import postgres
from devstack.paths import HOST, StackConfig, load_config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def throwaway_cluster(tmp_path: Path) -> Iterator[StackConfig]:
    """A cluster of the stack's own making on a free port, removed afterwards."""
    if postgres.find_bin_dir() is None:
        pytest.fail("PostgreSQL server binaries are missing: run `make stack-up` first")
    env = {**os.environ, "POINTS_STACK_DIR": str(tmp_path / "stack"),
           "POINTS_STACK_PG_PORT": str(_free_port())}  # fmt: skip
    config = load_config(env)
    try:
        yield config
    finally:
        postgres.stop(config)
        shutil.rmtree(config.pg_base_dir, ignore_errors=True)


def _crash(config: StackConfig) -> None:
    """SIGKILL the postmaster and every child of it at once (no shutdown checkpoint), then
    wait until none of those processes exists any more, reaped included: a new postmaster
    refuses to start while the old one's PID or its shared memory is still held."""
    info = postgres.postmaster_info(config)
    assert info is not None, "the cluster should be running before the crash"
    postmaster = psutil.Process(info[0])
    doomed = [postmaster, *postmaster.children(recursive=True)]
    for proc in doomed:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(psutil.pid_exists(p.pid) for p in doomed):
        time.sleep(0.1)
    assert not any(psutil.pid_exists(p.pid) for p in doomed), "a killed process lingers"


def test_start_after_a_crash_waits_for_the_wal_replay_and_keeps_committed_rows(
    throwaway_cluster: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Committed rows survive a crash, and a start whose pg_ctl gives up at once (timeout 0,
    standing in for a replay longer than the 60 s it normally allows) still ends with the
    server accepting connections: devstack waits while the log shows the replay."""
    config = throwaway_cluster
    postgres.start(config)
    url = (
        f"host={HOST} port={config.pg_port} user={postgres.APP_ROLE} "
        f"password={postgres.APP_PASSWORD} dbname={postgres.DATABASES[0]}"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE survives_crash (n bigint PRIMARY KEY, pad text)")
        conn.execute(
            "INSERT INTO survives_crash SELECT n, repeat('x', 200) FROM generate_series(1, 50000) n"
        )
    _crash(config)

    monkeypatch.setattr(postgres, "START_TIMEOUT_S", 0)
    waits: list[bool] = []
    wait_for_replay = postgres._wait_through_crash_recovery

    def recorded_wait(*args: object) -> bool:
        waits.append(wait_for_replay(*args))  # type: ignore[arg-type]
        return waits[-1]

    monkeypatch.setattr(postgres, "_wait_through_crash_recovery", recorded_wait)
    state, started = postgres.start(config)

    assert waits == [True], "pg_ctl gave up at once; devstack should have waited for the server"
    assert started and state.state == "running"
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM survives_crash").fetchone()
    assert row == (50000,)
    log = config.pg_log.read_text(errors="replace")
    assert "database system was not properly shut down" in log, "the start was no crash recovery"


def test_a_replay_is_told_apart_from_a_server_that_is_merely_slow_or_done() -> None:
    """Only the latest start's lines count: a replay that ended in an earlier start, or a
    start that reached "ready", is not in progress."""
    replaying = (
        "LOG:  starting PostgreSQL 15.18\n"
        "LOG:  database system was not properly shut down; automatic recovery in progress\n"
        "LOG:  redo in progress, elapsed time: 10.24 s, current LSN: 6/9B7D4878\n"
    )
    assert postgres.recovery_in_progress(replaying)
    done = replaying + "LOG:  database system is ready to accept connections\n"
    assert not postgres.recovery_in_progress(done)
    later_clean_start = done + "LOG:  starting PostgreSQL 15.18\nLOG:  listening on IPv4\n"
    assert not postgres.recovery_in_progress(later_clean_start)
