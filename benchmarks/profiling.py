"""py-spy, as the benches record a process and its children (collapsed stacks, ``--format
raw``): one launcher, so every bench's profile reads the same way."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def record(
    pid: int, output: Path, *, rate: int, gil: bool, seconds: int | None = None
) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` on ``pid`` and its subprocesses. ``gil``: only samples holding
    the interpreter lock (where an event loop's time goes); otherwise every sample of a
    running thread (CPU). Without ``seconds`` it records until sent SIGINT, then writes."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [spy, "record", "--format", "raw", "--rate", str(rate), "--subprocesses",
            "--output", str(output), "--pid", str(pid)]  # fmt: skip
    if gil:
        argv.append("--gil")
    if seconds is not None:
        argv += ["--duration", str(seconds)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
