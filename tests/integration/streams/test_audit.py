"""``points-ledger audit`` after a real worker run: clean when every event has its outcome,
and naming the event when one outcome is removed behind the pipeline's back."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import delete
from typer.testing import CliRunner

from points.cli.app import app
from points.db import make_engine
from points.earning.tables import customer_profiles, parked_events
from tests.integration.streams.support import (
    StreamEnv,
    Worker,
    encode,
    produce_sync,
    purchase,
    wait_until,
)


def refund(event_id: str, customer: str, original: str, amount: int) -> dict[str, object]:
    return {**purchase(event_id, customer, amount), "event_type": "refund",
            "original_event_id": original}


def run_audit(url: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(app, ["--json", "--database-url", url, "audit"])
    return result.exit_code, json.loads(result.stdout)


def _clean_with_events(result: tuple[int, dict[str, object]], events: int) -> bool:
    code, report = result
    return code == 0 and report["events"] == events


def test_audit_is_clean_after_a_run_and_names_an_event_whose_outcome_vanished(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """A purchase and its full refund, a refund before its purchase (then the purchase), a
    refund whose purchase never comes (parked), a malformed message and a profile: audit --json
    exits 0 with no offenders once the worker is done. Deleting the parked refund and the
    profile row (a silent loss) makes it exit 1 naming both events."""
    profile = {"event_type": "customer_profile", "event_id": "prof-1", "customer_id": "dora",
               "segment": "young", "joined_at": "2026-01-01T00:00:00+00:00",
               "birth_year": 2001, "status": "active",
               "occurred_at": "2026-11-27T08:00:00+00:00"}
    produce_sync(stream_env.bootstrap, stream_env.topic("bank_customers"),
                 [(b"dora", encode(profile))])
    produce_sync(stream_env.bootstrap, stream_env.topic("bank_transactions"), [
        (b"alice", encode(purchase("p1", "alice", 10_000))),
        (b"alice", encode(refund("r1", "alice", "p1", 10_000))),
        (b"bob", encode(refund("r2", "bob", "p2", 8_000))),
        (b"bob", encode(purchase("p2", "bob", 8_000))),
        (b"carol", encode(refund("r9", "carol", "p9", 5_000))),
        (b"alice", b"{broken"),
    ])
    url = stream_env.database_url
    worker = Worker(stream_env, tmp_path / "worker.log").start()
    try:
        # One audit per probe: two calls could see "clean" with five events and then six
        # events whose dead letter is not relayed yet, and stop the worker too early.
        wait_until(lambda: _clean_with_events(run_audit(url), 6), 90,
                   "a clean audit of 6 events", lambda: f"{run_audit(url)}\n{worker.log_tail()}")
    finally:
        assert worker.stop() == 0, worker.log_tail()
    code, report = run_audit(url)
    assert (code, report["ok"], report["offenders"]) == (0, True, [])

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(parked_events).where(parked_events.c.event_id == "r9"))
            conn.execute(delete(customer_profiles).where(customer_profiles.c.customer_id == "dora"))
    finally:
        engine.dispose()
    code, report = run_audit(url)
    assert code == 1
    offenders = report["offenders"]
    assert isinstance(offenders, list)
    assert sorted((o["check"], o["subject"]) for o in offenders) == [
        ("no_outcome", "prof-1"), ("no_outcome", "r9")]
