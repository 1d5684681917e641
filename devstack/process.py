"""Process bookkeeping: PID files, liveness, port checks, detached spawning, state.json.

Everything stops processes by the PID we recorded, after checking the PID still names our
process (PIDs get reused); nothing matches processes by name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

# --- PID files -------------------------------------------------------------------------------


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def read_pid(path: Path) -> int | None:
    """The PID in ``path``, or None when the file is missing or not a PID."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


# --- liveness --------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a running process (a zombie counts as dead)."""
    try:
        # A child we spawned and never reaped stays a zombie until we exit; it is not running.
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # exists, owned by another user (e.g. the postmaster when we are not root)


def cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid``, or None when it cannot be read."""
    try:
        argv: list[str] = psutil.Process(pid).cmdline()
    except psutil.Error:
        return None
    return argv


# --- ports -----------------------------------------------------------------------------------


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (we could bind it ourselves).

    SO_REUSEADDR so that connections of a just-stopped server in TIME_WAIT do not count as taken;
    Linux still refuses the bind while any socket listens on the port (also on 0.0.0.0).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_listens_on(pid: int, port: int) -> bool:
    """True when process ``pid`` owns a socket listening on ``port``.

    When the OS will not tell us who listens (another user's process, no permission), "port taken"
    has to do.
    """
    try:
        connections = psutil.Process(pid).net_connections(kind="inet")
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return not port_is_free("127.0.0.1", port)
    return any(
        conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        for conn in connections
    )


# --- starting and stopping -------------------------------------------------------------------


def spawn_detached(
    argv: Sequence[str], log_path: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start ``argv`` in its own session with output to ``log_path``; return its PID.

    Its own session so that Ctrl-C in the shell that ran `up`, or the end of a CI step's process
    group, does not take the server down with it. One run per log file; the
    previous one is kept as ``<log>.prev``.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the previous run's log: it is the one that explains a crash or a slow shutdown.
    if log_path.exists():
        log_path.replace(log_path.with_name(log_path.name + ".prev"))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=None if env is None else dict(env),
        )
    return proc.pid


def terminate(pid: int, timeout: float) -> bool:
    """SIGTERM ``pid``, wait up to ``timeout`` s, then SIGKILL. True if it had to be killed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_for_exit(pid, timeout):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_for_exit(pid, 10.0)
    return True


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone; reap it if it is our child. True when it exited in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    return not pid_alive(pid)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file ('' when missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --- state.json and the lock -----------------------------------------------------------------


def read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update_state(path: Path, service: str, info: dict[str, Any] | None) -> None:
    """Replace one service's entry in state.json (None removes it); atomic via rename."""
    state = read_state(path)
    if info is None:
        state.pop(service, None)
    else:
        state[service] = info
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` so two `up`/`down` runs on one stack do not race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
