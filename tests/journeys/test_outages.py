"""Journey: a bad night for the earning worker while core banking publishes a day through
librdkafka. The OOM killer takes the worker (SIGKILL to its pid alone, not its process group)
and the supervisor starts another; later the database is restarted (stopped ~10 s with the
stack's own `python -m devstack down --only postgres`, docs/local-stack.md) and the worker is
left to wait it out (docs/architecture.md, "Failure handling": it retries for 60 s by default).

The bank must end with: no process of the killed worker left behind (its lane processes die
with it), the second worker still running after the database came back, and exactly the ledger
of an undisturbed worker that read the same topics alongside, on the embedded SQLite ledger
(README, "Guarantees").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.journeys.harness import ROOT, Journey, Process, wait_until
from tests.journeys.test_crash_recovery import a_day, assert_same_ledger, start_beside_twin

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid`` (Linux /proc): pid -> start time, to tell a reused pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry)] = fields[19]
    return found


def still_running(pid: int, started: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] == started and fields[0] != "Z"


def oom_kill(worker: Process) -> dict[int, str]:
    """SIGKILL to the worker's pid only, as the kernel's OOM killer does; its children then."""
    assert worker.popen is not None
    left = children(worker.popen.pid)
    worker.should_run = False
    os.kill(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait(timeout=30)
    return left


def devstack_postgres(verb: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack", verb, "--only", "postgres"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def embedded_twin(journey: Journey, tmp_path: Path) -> Iterator[Journey]:
    """An undisturbed reference world on the same topics, on the embedded SQLite ledger (the
    default without POINTS_DATABASE__URL, README): the PostgreSQL restart does not touch it."""
    log_dir = tmp_path / "twin"
    (log_dir / "data").mkdir(parents=True)
    other = journey.twin(f"sqlite:///{log_dir / 'data' / 'ledger.sqlite3'}", log_dir)
    other.migrate()
    try:
        yield other
    finally:
        other.stop_all()
        print(other.logs())


def test_an_oom_kill_and_a_database_restart_leave_no_orphan_and_the_exact_ledger(
    journey: Journey, embedded_twin: Journey
) -> None:
    """The worker's pid SIGKILLed mid-day: none of its processes survives it, a new worker takes
    over. PostgreSQL stopped ~10 s mid-day: the worker waits and carries on. Every customer's
    balance, held points, debt and expiring points then equal an undisturbed twin's, and
    `verify` is clean on both."""
    twin = embedded_twin
    worker = start_beside_twin(journey, twin)

    day = a_day(seed=20261206)
    chunks = [day[i : i + 200] for i in range(0, len(day), 200)]
    with journey.bank_producer(compression="zstd") as bank:
        for number, chunk in enumerate(chunks):
            if number == 7:
                # This chunk arrives while the database is away: its batch must wait.
                devstack_postgres("down")
            try:
                for message in chunk:
                    bank.send(journey.topics.bank_transactions, message)
                bank.flush()
                time.sleep(10 if number == 7 else 0.3)
                assert worker.running, worker.log_tail()
            finally:
                if number == 7:
                    devstack_postgres("up")
            if number == 3:
                left = oom_kill(worker)
                assert left, "the worker had no child processes to leave behind"

                def all_gone(gone: dict[int, str] = left) -> bool:
                    return not any(still_running(p, s) for p, s in gone.items())

                try:
                    wait_until(
                        all_gone,
                        10,
                        "the killed worker's processes to end",
                    )
                finally:  # survivors, on a failure: not left running after the test
                    for pid, started in left.items():
                        if still_running(pid, started):
                            os.kill(pid, signal.SIGKILL)
                worker = journey.start_worker()
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions],
                           timeout_s=180)  # fmt: skip
    assert worker.running, worker.log_tail()
    assert "waiting for the database" in worker.log(), worker.log_tail()

    twin.wait_caught_up(twin.worker_group, [journey.topics.bank_transactions], timeout_s=180)

    assert_same_ledger(journey, twin)
