"""A real faust worker on bank.transactions, against the real broker and real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from sqlalchemy import func, select

from points.db import make_engine
from points.dead_letters import dead_letters
from points.inbox import inbound_events
from tests.integration.streams.support import (
    StreamEnv,
    Worker,
    consume_all,
    encode,
    produce_sync,
    purchase,
    wait_until,
)


def counts(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(inbound_events)).scalar_one()
            dead = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
        return int(stored), int(dead)
    finally:
        engine.dispose()


MALFORMED: list[tuple[bytes | None, bytes, str]] = [
    (b"c-1", b"{this is not json", "invalid_json"),
    (b"c-1", encode(purchase("bad-amount", "c-1", amount_minor=-5)), "contract_violation"),
    (b"c-2", encode(purchase("bad-key", "c-1")), "key_mismatch"),
    (
        b"c-3",
        encode({k: v for k, v in purchase("no-mcc", "c-3").items() if k != "mcc"}),
        "contract_violation",
    ),
    (
        b"c-4",
        encode({**purchase("naive-time", "c-4"), "occurred_at": "2026-11-27T09:00:00"}),
        "contract_violation",
    ),
]


def test_valid_distinct_events_are_stored_once_and_each_malformed_one_is_dead_lettered(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """Mixed input: exactly the valid distinct events land; each bad one is in points.dlq with
    its reason code and its original bytes; duplicates are stored once."""
    valid = [purchase(f"e-{i}", f"c-{i % 20}") for i in range(200)]
    resent = random.Random(7).sample(valid, 30)
    records = [(e["customer_id"].encode(), encode(e)) for e in valid + resent]
    records += [(key, value) for key, value, _ in MALFORMED]
    random.Random(8).shuffle(records)
    produce_sync(stream_env.bootstrap, stream_env.topic("bank_transactions"), records)

    worker = Worker(stream_env, tmp_path / "worker.log").start()
    try:
        wait_until(
            lambda: counts(stream_env.database_url) == (200, len(MALFORMED)),
            90,
            "200 stored and 5 dead letters",
            worker.log_tail,
        )
        dlq = asyncio.run(
            consume_all(stream_env.bootstrap, stream_env.topic("points_dlq"), len(MALFORMED))
        )
    finally:
        assert worker.stop() == 0, worker.log_tail()

    assert counts(stream_env.database_url) == (200, len(MALFORMED))
    by_value = {record.value: dict(record.headers) for record in dlq}
    assert len(dlq) == len(MALFORMED)
    for _key, value, code in MALFORMED:
        assert by_value[value]["dlq.reason_code"] == code.encode()
        assert by_value[value]["dlq.reason"]


def test_a_worker_killed_mid_stream_and_restarted_loses_and_doubles_nothing(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    """SIGKILL twice while batches are in flight, then more traffic after the last restart:
    every distinct event is stored exactly once and every malformed one dead-lettered once."""
    first_wave = [purchase(f"k-{i}", f"c-{i % 97}") for i in range(40_000)]
    second_wave = [purchase(f"k-{i}", f"c-{i % 97}") for i in range(40_000, 50_000)]
    rng = random.Random(3)
    duplicates = rng.sample(first_wave, 2_000)
    records = [(e["customer_id"].encode(), encode(e)) for e in first_wave + duplicates]
    records += [(key, value) for key, value, _ in MALFORMED]
    produce_sync(stream_env.bootstrap, stream_env.topic("bank_transactions"), records)

    log = tmp_path / "worker.log"
    for kill_after in (5_000, 20_000):
        worker = Worker(stream_env, log).start()

        def stored(n: int = kill_after) -> bool:
            return counts(stream_env.database_url)[0] >= n

        wait_until(
            stored,
            120,
            f"{kill_after} events stored before the kill",
            worker.log_tail,
        )
        worker.kill()
    stored_at_last_kill = counts(stream_env.database_url)[0]

    worker = Worker(stream_env, log).start()
    try:
        # Traffic that only the restarted worker can see proves it is consuming again.
        resent = rng.sample(first_wave, 500)
        produce_sync(
            stream_env.bootstrap,
            stream_env.topic("bank_transactions"),
            [(e["customer_id"].encode(), encode(e)) for e in second_wave + resent],
        )
        total = len(first_wave) + len(second_wave)
        wait_until(
            lambda: counts(stream_env.database_url) == (total, len(MALFORMED)),
            120,
            "every event stored after restarts",
            worker.log_tail,
        )
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert stored_at_last_kill < len(first_wave), "the kills came after all work was done"
    engine = make_engine(stream_env.database_url)
    try:
        with engine.connect() as conn:
            ids = set(conn.execute(select(inbound_events.c.event_id)).scalars())
    finally:
        engine.dispose()
    assert ids == {e["event_id"] for e in first_wave + second_wave}
