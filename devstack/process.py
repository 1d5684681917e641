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
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user (e.g. the postmaster when we are not root)
    # A child we spawned and never reaped stays a zombie until we exit; it is not running.
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # Field 3 is the state; the command name before it is in parentheses and may hold spaces.
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    return True


def cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid`` (Linux /proc), or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


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


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on ``port`` per /proc/net/tcp{,6}; None without /proc."""
    inodes: set[str] = set()
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the inode.
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    return inodes if found_table else None


def pid_listens_on(pid: int, port: int) -> bool:
    """True when process ``pid`` owns a socket listening on ``port``.

    Without /proc (not Linux) we cannot tell who listens, so "port taken" has to do.
    """
    inodes = _listening_inodes(port)
    if inodes is None:
        return not port_is_free("127.0.0.1", port)
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    return False


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
