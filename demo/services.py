"""Background services the demo starts and `make demo-stop` stops: by PID file, never by name."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from devstack.process import pid_alive, read_pid, spawn_detached, terminate, write_pid

__all__ = ["Service", "running", "start", "stop_all"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    description: str


def _run_dir(data_dir: Path) -> Path:
    path = data_dir / "demo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def running(data_dir: Path, name: str) -> int | None:
    pid = read_pid(_run_dir(data_dir) / f"{name}.pid")
    return pid if pid is not None and pid_alive(pid) else None


def start(data_dir: Path, service: Service, env: dict[str, str]) -> tuple[int, bool]:
    """Start ``service`` unless it already runs; return (pid, started_now)."""
    pid = running(data_dir, service.name)
    if pid is not None:
        return pid, False
    run_dir = _run_dir(data_dir)
    argv = [sys.executable, *service.argv]
    pid = spawn_detached(argv, run_dir / f"{service.name}.log", ROOT, env=env)
    write_pid(run_dir / f"{service.name}.pid", pid)
    return pid, True


def stop_all(data_dir: Path) -> list[str]:
    """SIGTERM every service the demo started (SIGKILL after 30 s); return what was stopped."""
    stopped = []
    run_dir = _run_dir(data_dir)
    for pid_file in sorted(run_dir.glob("*.pid")):
        pid = read_pid(pid_file)
        if pid is not None and pid_alive(pid):
            terminate(pid, timeout=30)
            stopped.append(pid_file.stem)
        pid_file.unlink(missing_ok=True)
    return stopped
