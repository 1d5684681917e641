"""A stop signal sent to the worker's whole process group, as systemd's default control-group
stop and a terminal's Ctrl-C send it, reaches the lane child processes too. The worker must
still finish the batches in flight and exit 0 (a clean stop), not 75 with "a lane process
died": the lanes leave the stop to their parent (streams/lane_processes.py).

Found by CI: the SIGTERM that ends a test's worker reached a lane mid-batch (stop 23)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration.streams import scenario
from tests.integration.streams.support import StreamEnv, Worker, produce_sync, wait_until
from tests.integration.streams.test_earning_worker import (
    assert_same_ledger,
    counts,
    publish_day,
    reference_run,
)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_stop_signal_to_the_whole_process_group_mid_stream_is_a_clean_stop(
    stream_env: StreamEnv, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """Signalled mid-stream with lanes busy: exit code 0 and no "lane process died"; a restart
    then ends with the ledger of an undisturbed run (nothing lost or paid twice by the stop)."""
    day = scenario.build(seed=5, customers=200, purchases=8_000)
    expected = reference_run(tmp_path, stream_env, day)
    log = tmp_path / "worker.log"
    worker = Worker(stream_env, log).start()
    total = publish_day(stream_env, day, worker)
    midway = len(day.profiles) + (total - len(day.profiles)) // 3
    wait_until(
        lambda: counts(stream_env.database_url)[0] >= midway, 120, "a third stored", worker.log_tail
    )
    assert worker.process is not None
    stored_at_signal = counts(stream_env.database_url)[0]
    assert stored_at_signal < total, "the signal landed after the run: it proved nothing"
    os.killpg(worker.process.pid, stop_signal)
    code = worker.process.wait(timeout=60)
    assert code == 0, worker.log_tail()
    assert "lane process died" not in worker.log()

    # A clean stop may finish the work already fetched (measured: the rest of this day, 1.6 s),
    # so the restart is proven up by a message of its own: a malformed one, dead-lettered, which
    # leaves the ledger compared below alone.
    restarted = Worker(stream_env, log).start()
    produce_sync(
        stream_env.bootstrap, stream_env.topic("bank_transactions"), [(b"late", b"{broken")]
    )
    try:
        wait_until(
            lambda: counts(stream_env.database_url) == (total, day.malformed + 1),
            180,
            "every event applied after the stop, and the restart's own message dead-lettered",
            restarted.log_tail,
        )
    finally:
        assert restarted.stop() == 0, restarted.log_tail()
    assert_same_ledger(stream_env.database_url, expected)
