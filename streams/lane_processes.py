"""The earning worker's database lanes, each in a child process of its own.

Why: a lane's work is mostly Python (decoding, rules, the ledger's decisions, encoding rows),
and Python runs one thread at a time per process. With both lanes in the worker process the
worker could not use more than one core however many lanes it had (measured: ~0.9 core busy,
the other core half idle; two whole worker processes did 1.6 times the events/s of one). A child
process per lane lets the lanes' Python run on both cores, while the worker process keeps the
consumer, the acks and offset commits, and the outbox relay.

What does not change: the worker is still one member of the consumer group; lane ``n`` (its
partitions ``p % lanes == n``) always runs in the same child, one batch at a time, so the
child's working set (points/earning/working_set.py) stays the memory of exactly those
customers; a batch is acked only after the child committed it and answered.

Failure: a child that dies takes its lane's batch with it (never acked). The lane's executor is
then broken and the worker exits with code 75 (streams/runtime.py): the supervisor restarts it
and the replay is harmless.

Stopping: a child ignores SIGTERM and SIGINT (:func:`leave_stop_signals_to_the_parent`). A stop
sent to the whole process group (systemd's control-group stop, Ctrl-C) would otherwise kill the
lanes mid-batch and turn a clean stop into the crash path above.

A child dies with its parent, whatever kills the parent (kill -9, the OOM killer, the worker's
own ``os._exit(75)``): left alone it would block for good on its task queue (it holds that
queue's write end itself, so it never sees end-of-file), 90-110 MB per child leaked on every
restart. Two guards, set up first thing in the child (:func:`die_with_parent`):

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the child when the thread
  that started it ends. The children are started eagerly from the thread that builds
  :class:`LaneProcesses` (the main thread), so that is the process's life. The parent may have
  died before the call: the child then checks that its parent is still the pid it was given;
* everywhere, a watchdog thread on multiprocessing's parent sentinel, a pipe whose write end
  only the parent holds: end-of-file means the parent is gone, and the child exits at once.

Killing a child mid-transaction is safe: PostgreSQL rolls back what was not committed, and
what was committed but not acked is replayed harmlessly (the inbox).
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from points.decoding import RawMessage
from points.earning import BatchOutcome, EarningService
from streams.runtime import CollectBetweenBatches

__all__ = ["LaneProcesses", "die_with_parent", "leave_stop_signals_to_the_parent"]

# <linux/prctl.h>
_PR_SET_PDEATHSIG = 1
# Exit code of a lane child that found its parent gone (EX_TEMPFAIL, as the worker's own).
_EXIT_ORPHANED = 75

# The service of the lane this child process runs, and its cycle collector (set at start-up).
_service: EarningService | None = None
_collector: CollectBetweenBatches | None = None


def die_with_parent(parent_pid: int) -> None:
    """Make this (child) process end when ``parent_pid`` does: a parent-death signal where the
    kernel offers one, and a watchdog on the pipe from the parent everywhere."""
    if sys.platform.startswith("linux"):
        _set_parent_death_signal()
    # After prctl: a parent that died before it is no longer our parent (we were re-parented
    # to init or a subreaper), and no signal would ever come.
    if os.getppid() != parent_pid:
        os._exit(_EXIT_ORPHANED)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=_exit_when_closed, args=(parent.sentinel,), name="parent-watchdog", daemon=True
        ).start()


def leave_stop_signals_to_the_parent() -> None:
    """Ignore SIGTERM and SIGINT in a lane child: the worker decides when its lanes stop.

    A stop signal often goes to the whole process group, not just the worker: systemd's default
    ``KillMode=control-group``, a terminal's Ctrl-C, ``kill -TERM -<pgid>``. Left to the default
    action, a lane child would die at once, mid-batch, and the worker would read its broken
    executor as a crash ("a lane process died", exit 75) instead of finishing a clean stop.
    Ignoring them, the child finishes its batch; the worker's stop then shuts the executors
    down, and if the worker dies instead, the guards of :func:`die_with_parent` end the child.
    SIGKILL still ends it at once, as it ends everything.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _set_parent_death_signal() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")


def _exit_when_closed(sentinel: int) -> None:
    # Readable only at end-of-file: the parent never writes to this pipe, it just holds it.
    multiprocessing.connection.wait([sentinel])
    os._exit(_EXIT_ORPHANED)


def _start_lane(parent_pid: int) -> None:
    """Child start-up: die with the worker, then the same settings as the worker (the
    environment is inherited)."""
    global _service, _collector
    leave_stop_signals_to_the_parent()
    die_with_parent(parent_pid)
    from points.db import make_engine
    from points.settings import load_settings

    settings = load_settings()
    engine = make_engine(settings.database_url, echo=settings.database.echo)
    _service = EarningService.from_settings(settings, engine)
    # A lane process runs nothing but batches: collect cycles between them, not inside.
    _collector = CollectBetweenBatches()


def _process(batch: Sequence[tuple[str, int, int, bytes | None, bytes | None]]) -> BatchOutcome:
    """One lane batch; the messages travel as plain tuples (pickled several times faster than
    RawMessage objects)."""
    assert _service is not None and _collector is not None, "lane process not started"
    try:
        return _service.process([RawMessage(*fields) for fields in batch])
    finally:
        _collector.after_batch()


def _started() -> int:
    return os.getpid()


def _forget() -> None:
    if _service is not None:
        _service.forget_working_set()


class LaneProcesses:
    """One single-process executor per lane (so a lane always lands in the same child)."""

    def __init__(self, lanes: int) -> None:
        # spawn, not fork: the worker runs threads (the consumer's, the executor's), and a
        # forked child would inherit their locks in whatever state they were in.
        context = multiprocessing.get_context("spawn")
        self._executors = [
            ProcessPoolExecutor(
                max_workers=1,
                mp_context=context,
                initializer=_start_lane,
                initargs=(os.getpid(),),
            )
            for _ in range(lanes)
        ]
        # Start the children now, from this thread (the worker's main thread, which lives as
        # long as the process): the parent-death signal fires when the starting thread ends.
        # Left lazy they would start in whatever thread first submitted a batch.
        for executor in self._executors:
            executor.submit(_started)

    @property
    def lanes(self) -> int:
        return len(self._executors)

    def runner(self, lane: int) -> _LaneRunner:
        return _LaneRunner(self._executors[lane])

    def forget_working_sets(self) -> None:
        """Ask every lane to drop its remembered customers (queued behind its current batch)."""
        for executor in self._executors:
            executor.submit(_forget)

    def shutdown(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)


class _LaneRunner:
    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self._executor = executor

    async def __call__(self, batch: Sequence[RawMessage]) -> BatchOutcome:
        loop = asyncio.get_running_loop()
        plain = [(m.topic, m.partition, m.offset, m.key, m.value) for m in batch]
        return await loop.run_in_executor(self._executor, _process, plain)
