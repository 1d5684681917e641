"""Real subprocesses for integration tests: started in their own session with output to a log
file, stopped with SIGTERM (a supervisor's stop) or killed with SIGKILL (a crash)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ROOT", "ManagedProcess"]


class ManagedProcess:
    """``python -m <module> <args>`` with ``env``, its output appended to ``log_path``."""

    def __init__(
        self, module_and_args: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> None:
        self._argv = [sys.executable, "-m", *module_and_args]
        self._env = dict(env)
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._argv,
                cwd=ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final offset commit — a crash."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait (SIGKILL after ``timeout_s``); the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=30)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])
