"""Helpers for tests that take the stack's PostgreSQL or broker away and look for orphans.

PostgreSQL and the broker are stopped and started with the project's own ``python -m
devstack`` (the ports come from the environment the tests run in, POINTS_STACK_*), so only this
stack's servers are touched. Processes are found through /proc (Linux), by parent pid.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.integration.processes import ROOT

__all__ = [
    "ProcessId",
    "alive",
    "children_of",
    "kafka_down",
    "postgres_down",
    "start_postgres",
    "stop_postgres",
]

ProcessId = tuple[int, str]
"""(pid, start time in clock ticks): a pid alone could be reused by a new process."""


def _devstack(verb: str, service: str = "postgres") -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack", verb, "--only", service],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"devstack {verb} failed: {result.stdout}{result.stderr}"


def stop_postgres() -> None:
    _devstack("down")


def start_postgres() -> None:
    _devstack("up")


@contextlib.contextmanager
def postgres_down() -> Iterator[None]:
    """PostgreSQL stopped for the body; started again afterwards whatever happens."""
    stop_postgres()
    try:
        yield
    finally:
        start_postgres()


@contextlib.contextmanager
def kafka_down() -> Iterator[None]:
    """The broker stopped for the body (its data kept); started again afterwards."""
    _devstack("down", "kafka")
    try:
        yield
    finally:
        _devstack("up", "kafka")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    return raw[raw.rindex(")") + 2 :].split()  # [state, ppid, ..., starttime at index 19]


def children_of(parent: int) -> dict[ProcessId, str]:
    """The live children of ``parent``: their ids and command lines."""
    found: dict[ProcessId, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is None or int(fields[1]) != parent or fields[0] == "Z":
            continue
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            found[(int(entry), fields[19])] = cmdline.decode(errors="replace").strip()
    return found


def alive(process: ProcessId) -> bool:
    """Still running (a zombie waiting to be reaped has ended)."""
    pid, started = process
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"
