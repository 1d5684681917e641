"""The earning worker end to end: real broker, real PostgreSQL, real crashes."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

from sqlalchemy import func, select

from points.db import make_engine
from points.dead_letters import dead_letters
from points.earning import EarningService
from points.earning.tables import customer_profiles
from points.inbox import inbound_events
from points.ledger import customer_balance, statement
from points.migrate import upgrade
from points.rules import load_ruleset
from tests.integration.processes import ROOT
from tests.integration.streams import scenario
from tests.integration.streams.support import (
    StreamEnv,
    Worker,
    consume_all,
    encode,
    produce_sync,
    purchase,
    wait_until,
)

SIMPLE_RULES = ROOT / "tests" / "fixtures" / "rules-simple.yaml"
DEFAULT_RULES = ROOT / "rules" / "default.yaml"


def counts(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(inbound_events)).scalar_one()
            dead = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
        return int(stored), int(dead)
    finally:
        engine.dispose()


def profiles_stored(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(customer_profiles)).scalar_one()
            )
    finally:
        engine.dispose()


def refund(event_id: str, customer: str, original: str, amount: int) -> dict[str, object]:
    return {
        **purchase(event_id, customer, amount),
        "event_type": "refund",
        "original_event_id": original,
    }


def check_in(event_id: str, customer: str, hour: int) -> dict[str, object]:
    return {
        "event_type": "check_in",
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": f"2026-11-27T{hour:02d}:00:00+00:00",
    }


def test_mixed_stream_yields_exact_balances_statements_ledger_messages_and_dlq(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """Valid, duplicate, out-of-order and malformed input through the broker: balances and
    statements as computed by hand (rules-simple.yaml), one points.ledger message per entry,
    and each bad message in points.dlq with its reason."""
    stream_env.extra_env["POINTS_RULES__PATH"] = str(SIMPLE_RULES)
    p1 = purchase("p1", "alice", 12_345)
    transactions = [
        ("alice", p1),
        ("alice", p1),  # duplicate
        ("bob", refund("r2", "bob", "p2", 8_000)),  # before its purchase
        ("bob", purchase("p2", "bob", 8_000)),
        ("carol", purchase("p3", "carol", 10_000)),
        ("carol", refund("r3", "carol", "p3", 5_000)),
    ]
    bad = [
        (b"alice", b"{broken"),
        (b"mallory", encode(purchase("p9", "alice", 100))),
        (b"alice", encode(purchase("p8", "alice", -1))),
    ]
    produce_sync(
        stream_env.bootstrap,
        stream_env.topic("bank_transactions"),
        [(c.encode(), encode(e)) for c, e in transactions] + bad,
    )
    produce_sync(
        stream_env.bootstrap,
        stream_env.topic("customer_activity"),
        [
            (b"alice", encode(check_in("c1", "alice", 8))),
            (b"alice", encode(check_in("c2", "alice", 9))),
        ],
    )
    worker = Worker(stream_env, tmp_path / "worker.log").start()
    try:
        wait_until(
            lambda: counts(stream_env.database_url) == (7, 3),
            90,
            "7 stored, 3 dead",
            worker.log_tail,
        )
        dlq = asyncio.run(consume_all(stream_env.bootstrap, stream_env.topic("points_dlq"), 3))
        announced = asyncio.run(
            consume_all(stream_env.bootstrap, stream_env.topic("points_ledger"), 6)
        )
    finally:
        assert worker.stop() == 0, worker.log_tail()

    engine = make_engine(stream_env.database_url)
    try:
        with engine.connect() as conn:
            now = scenario.BASE_TIME
            got = {
                c: customer_balance(conn, c, now=now).available for c in ("alice", "bob", "carol")
            }
            carol_lines = [(line.kind, line.wallet_delta) for line in statement(conn, "carol")]
    finally:
        engine.dispose()
    # alice: 123 + 100 first purchase + 5 check-in (second capped); bob: 180 earned, 180 back;
    # carol: 100 + 100 earned, half of 100 base clawed back.
    assert got == {"alice": 228, "bob": 0, "carol": 150}
    assert sorted(carol_lines) == [("clawback", -50), ("earn", 200)]
    assert sorted(dict(r.headers)["dlq.reason_code"] for r in dlq) == [
        b"contract_violation",
        b"invalid_json",
        b"key_mismatch",
    ]
    keys = sorted(json.loads(r.value)["entry_key"] for r in announced)
    assert keys == ["clawback:r2", "clawback:r3", "earn:c1", "earn:p1", "earn:p2", "earn:p3"]


def reference_run(
    tmp_path: Path, env: StreamEnv, day: scenario.Scenario
) -> scenario.LedgerSnapshot:
    """The same messages applied in publish order, in-process, on SQLite: the expected ledger."""
    url = f"sqlite:///{tmp_path / 'reference.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    settings = env.settings()
    service = EarningService(engine, load_ruleset(DEFAULT_RULES), settings.kafka.topics)
    service.process(scenario.as_raw(settings.kafka.topics.bank_customers, day.profiles))
    raw = scenario.as_raw(settings.kafka.topics.bank_transactions, day.transactions)
    for start in range(0, len(raw), 700):
        service.process(raw[start : start + 700])
    scenario.assert_clean(engine)
    snap = scenario.snapshot(engine)
    engine.dispose()
    return snap


def assert_same_ledger(url: str, expected: scenario.LedgerSnapshot) -> None:
    """A clean verify, and entries, balances and rule state equal to the reference run's."""
    engine = make_engine(url)
    try:
        scenario.assert_clean(engine)
        actual = scenario.snapshot(engine)
    finally:
        engine.dispose()
    assert actual.entries == expected.entries
    assert actual.balances == expected.balances
    assert actual.rule_states == expected.rule_states


def publish_profiles_and_wait(env: StreamEnv, day: scenario.Scenario, worker: Worker) -> None:
    """Profiles first, consumed before any purchase: cross-topic order is not Kafka's to keep."""
    produce_sync(env.bootstrap, env.topic("bank_customers"), day.profiles)
    wait_until(
        lambda: profiles_stored(env.database_url) == len(day.profiles),
        90,
        "profiles",
        worker.log_tail,
    )


def publish_day(env: StreamEnv, day: scenario.Scenario, worker: Worker) -> int:
    """The day's profiles (waited for), then its transactions; the number of inbox rows the
    whole day ends with (profiles and distinct valid transactions)."""
    publish_profiles_and_wait(env, day, worker)
    produce_sync(env.bootstrap, env.topic("bank_transactions"), day.transactions)
    return len(day.profiles) + day.distinct_valid_transactions


def test_kill_9_at_random_points_ends_with_the_same_ledger_as_an_undisturbed_run(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """Three SIGKILLs at random moments during the run, restarts in between: entries, balances
    and rule state equal the undisturbed reference exactly, and verify() is clean."""
    day = scenario.build(seed=11, customers=300, purchases=12_000)
    expected = reference_run(tmp_path, stream_env, day)
    log = tmp_path / "worker.log"
    worker = Worker(stream_env, log).start()
    total = publish_day(stream_env, day, worker)
    rng = random.Random(99)
    # Kill points spread over the run (around a quarter, half and three quarters of it), not
    # offsets from wherever the last restart got to: a fast worker could otherwise finish
    # before the third kill, leaving a kill point it can never reach.
    quarter = (total - len(day.profiles)) // 4
    kill_points = [
        len(day.profiles) + n * quarter + rng.randrange(-quarter // 4, quarter // 4)
        for n in (1, 2, 3)
    ]
    for kill_point in kill_points:

        def stored(t: int = kill_point) -> bool:
            return counts(stream_env.database_url)[0] >= t

        wait_until(
            stored,
            120,
            f"{kill_point} stored",
            worker.log_tail,
        )
        worker.kill()
        stored_at_kill = counts(stream_env.database_url)[0]
        assert stored_at_kill < total, "the kill landed after the run: it proved nothing"
        worker = Worker(stream_env, log).start()
    try:
        wait_until(
            lambda: counts(stream_env.database_url) == (total, day.malformed),
            180,
            "every event applied after the crashes",
            worker.log_tail,
        )
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert_same_ledger(stream_env.database_url, expected)


def test_two_workers_share_the_partitions_and_losing_one_loses_nothing(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """Two workers in one group; one is SIGKILLed mid-run; after the rebalance the survivor
    finishes and the ledger equals the undisturbed reference."""
    day = scenario.build(seed=12, customers=300, purchases=12_000)
    expected = reference_run(tmp_path, stream_env, day)
    first = Worker(stream_env, tmp_path / "worker-a.log").start()
    second = Worker(stream_env, tmp_path / "worker-b.log").start()
    total = publish_day(stream_env, day, first)
    halfway = len(day.profiles) + day.distinct_valid_transactions // 3
    wait_until(
        lambda: counts(stream_env.database_url)[0] >= halfway,
        120,
        "a third applied",
        first.log_tail,
    )
    first.kill()
    try:
        wait_until(
            lambda: counts(stream_env.database_url) == (total, day.malformed),
            180,
            "the survivor to finish",
            second.log_tail,
        )
    finally:
        assert second.stop() == 0, second.log_tail()
    assert_same_ledger(stream_env.database_url, expected)
