"""Lane child processes die with their parent (streams/lane_processes.py, die_with_parent),
whatever ends the parent: SIGKILL, its own os._exit. Both guards are pinned separately: the
parent-death signal, and the pipe watchdog that stands in where there is no such signal.

A parent script starts a child the way LaneProcesses does (spawn, ProcessPoolExecutor,
die_with_parent as the initializer), prints the child's pid and waits to be killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.processes import ROOT

PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from streams import lane_processes

    def only_the_pipe(parent_pid):
        # The portable guard alone: as on a system without PR_SET_PDEATHSIG.
        lane_processes._set_parent_death_signal = lambda: None
        lane_processes.die_with_parent(parent_pid)

    if __name__ == "__main__":
        guard = only_the_pipe if sys.argv[1] == "pipe" else lane_processes.die_with_parent
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=guard,
            initargs=(os.getpid(),),
        )
        print(pool.submit(os.getpid).result(), flush=True)
        if sys.argv[2] == "exit75":
            os._exit(75)
        time.sleep(600)
    """
)


def running(pid: int) -> bool:
    """Alive and not a zombie (a dead child waiting to be reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def start_parent(tmp_path: Path, guard: str, ending: str) -> tuple[subprocess.Popen[str], int]:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), guard, ending],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert child != parent.pid
    return parent, child


@pytest.mark.parametrize("guard", ["pdeathsig-and-pipe", "pipe"])
@pytest.mark.parametrize("ending", ["sigkill", "exit75"])
def test_a_lane_child_ends_within_seconds_of_its_parent(
    tmp_path: Path, guard: str, ending: str
) -> None:
    """The parent is SIGKILLed (its pid only, not its group) or leaves with os._exit(75): its
    child is gone within a few seconds."""
    parent, child = start_parent(tmp_path, guard, ending)
    try:
        if ending == "sigkill":
            os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 5
        while running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(child), f"child {child} outlived its parent ({guard}, {ending})"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)  # survivors, on a failure
        parent.wait(timeout=30)


def test_a_child_whose_parent_died_before_it_armed_the_signal_exits_at_once() -> None:
    """The race: the parent it was given is no longer its parent (it died before prctl, the
    child was re-parented), so no signal would ever come. The child exits 75 right away."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from streams.lane_processes import die_with_parent\n"
            "die_with_parent(1 if __import__('os').getppid() != 1 else 2)\n"
            "print('still running')",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 75, result.stderr
    assert "still running" not in result.stdout
