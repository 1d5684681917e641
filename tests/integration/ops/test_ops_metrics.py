"""The dashboard's read-side queries (points.ops_metrics) on SQLite and PostgreSQL, the verify
cache's threading, and consumer lag against the real Kafka broker."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from points import ops_metrics
from points.dead_letters import dead_letters
from points.earning.tables import earning_records
from points.inbox import inbound_events
from points.ledger.verify import VerifyReport, Violation
from points.settings import KafkaSettings
from streams.consumer_lag import KafkaConsumerLag, consumer_lag
from tests.conftest import require_env

from .seeding import REFERRALS, SWAPS, seed_referrals, seed_swaps

NOW = datetime(2026, 11, 27, 12, 0, 2, tzinfo=UTC)


def _inbox(engine: Engine, rows: list[tuple[str, datetime]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(inbound_events), [
            {"event_id": f"e{i}", "topic": topic, "event_type": "purchase",
             "customer_id": "c", "kafka_partition": 0, "kafka_offset": i, "payload": {},
             "received_at": at}
            for i, (topic, at) in enumerate(rows)
        ])


def test_events_per_second_buckets_by_topic(engine: Engine) -> None:
    """Counts per topic land in their time bucket as a rate; older rows are outside the
    window; the current bucket is divided by the seconds it has lasted."""
    rows = [("bank.transactions", NOW - timedelta(seconds=25))] * 20  # 11:59:37
    rows += [("customer.activity", NOW - timedelta(seconds=15))] * 5  # 11:59:47
    rows += [("bank.transactions", NOW - timedelta(seconds=1))] * 4  # current bucket, 2 s old
    rows += [("bank.transactions", NOW - timedelta(minutes=20))] * 7  # outside the window
    _inbox(engine, rows)
    with engine.connect() as conn:
        got = ops_metrics.events_per_second(conn, now=NOW, minutes=1, bucket_s=10)
    assert got["bucket_s"] == 10
    assert len(got["bucket_starts"]) == 6
    assert got["bucket_starts"][-1] == int(NOW.timestamp()) // 10 * 10
    assert got["totals"] == {"bank.transactions": 24, "customer.activity": 5}
    tx, act = got["series"]["bank.transactions"], got["series"]["customer.activity"]
    assert tx == [0.0, 0.0, 2.0, 0.0, 0.0, 2.0]  # 20 in 10 s; 4 in the 2 s so far
    assert act == [0.0, 0.0, 0.0, 0.5, 0.0, 0.0]


def test_events_per_second_with_an_empty_inbox(engine: Engine) -> None:
    """No events: no series, and the time axis is still there."""
    with engine.connect() as conn:
        got = ops_metrics.events_per_second(conn, now=NOW, minutes=10, bucket_s=5)
    assert got["series"] == {} and got["totals"] == {}
    assert len(got["bucket_starts"]) == 120


def _record(event_id: str, lines: list[tuple[str, str, int]]) -> dict[str, object]:
    return {
        "event_id": event_id, "customer_id": "c1",
        "record": {
            "event_id": event_id, "customer_id": "c1", "ruleset_version": "v", "amount_minor": 1,
            "currency": "CNY", "partner_id": None, "refunded_minor": 0, "clawed": {},
            "lines": [{"rule_id": r, "kind": k, "points": p, "explanation": "",
                       "clawback": "proportional"} for r, k, p in lines],
        },
    }


def test_points_by_rule_and_campaign(engine: Engine) -> None:
    """Every earning record's lines summed by rule in the database; campaign lines also by
    campaign; largest first."""
    with engine.begin() as conn:
        conn.execute(insert(earning_records), [
            _record("p1", [("base", "base_rate", 100), ("double", "campaign", 100)]),
            _record("p2", [("base", "base_rate", 50), ("first-swipe", "milestone", 300)]),
            _record("p3", [("base", "base_rate", 7), ("young", "campaign", 3),
                           ("double", "campaign", 7)]),
            _record("p4", []),
        ])
    with engine.connect() as conn:
        got = ops_metrics.points_by_rule(conn)
    assert got["by_rule"] == [
        {"id": "first-swipe", "kind": "milestone", "points": 300},
        {"id": "base", "kind": "base_rate", "points": 157},
        {"id": "double", "kind": "campaign", "points": 107},
        {"id": "young", "kind": "campaign", "points": 3},
    ]
    assert [(c["id"], c["points"]) for c in got["by_campaign"]] == [("double", 107), ("young", 3)]
    assert got["total"] == 567
    with engine.begin() as conn:
        conn.execute(earning_records.update().where(earning_records.c.event_id == "p2")
                     .values(updated_at=NOW - timedelta(days=2)))
        conn.execute(earning_records.update().where(earning_records.c.event_id != "p2")
                     .values(updated_at=NOW - timedelta(hours=1)))
    with engine.connect() as conn:
        recent = ops_metrics.points_by_rule(conn, since=NOW - timedelta(days=1))
    assert [(r["id"], r["points"]) for r in recent["by_rule"]] == [
        ("base", 107), ("double", 107), ("young", 3)]
    assert recent["since"] == (NOW - timedelta(days=1)).isoformat()


def test_swap_and_referral_funnels(engine: Engine) -> None:
    """Swaps by partner and state, referrals by status; every state present, zeros too."""
    with engine.connect() as conn:
        empty = {"states": list(ops_metrics.SWAP_STATES), "partners": {}}
        assert ops_metrics.swap_funnel(conn) == empty
        assert ops_metrics.referral_funnel(conn)["total"] == 0
    seed_swaps(engine, NOW)
    seed_referrals(engine, NOW)
    with engine.connect() as conn:
        swaps = ops_metrics.swap_funnel(conn)
        referrals = ops_metrics.referral_funnel(conn)
    assert list(swaps["partners"]) == ["airline", "eshop", "ridehail"]
    for partner, status, count in SWAPS:
        assert swaps["partners"][partner][status] == count
    assert swaps["partners"]["ridehail"]["requested"] == 0
    assert referrals["counts"] == dict(REFERRALS)
    assert referrals["states"] == list(ops_metrics.REFERRAL_STATES)
    assert referrals["total"] == sum(n for _, n in REFERRALS)


def test_dlq_by_reason_all_time_and_recent(engine: Engine) -> None:
    """Dead letters by reason code, most first; ``recent`` counts the last day only."""
    rows = [("invalid_json", NOW - timedelta(hours=1))] * 3
    rows += [("invalid_json", NOW - timedelta(days=3))] * 2
    rows += [("key_mismatch", NOW - timedelta(days=3))]
    with engine.begin() as conn:
        conn.execute(insert(dead_letters), [
            {"topic": "bank.transactions", "kafka_partition": 0, "kafka_offset": i,
             "reason_code": code, "reason": "bad", "message_key": None, "message_value": b"x",
             "created_at": at}
            for i, (code, at) in enumerate(rows)
        ])
    with engine.connect() as conn:
        got = ops_metrics.dlq_by_reason(conn, now=NOW, recent_hours=24)
    assert got["reasons"] == [
        {"reason_code": "invalid_json", "count": 5, "recent": 3},
        {"reason_code": "key_mismatch", "count": 1, "recent": 0},
    ]
    assert got["total"] == 6


def test_verify_cache_runs_the_real_verify_on_the_ledger(engine: Engine) -> None:
    """The first call runs verify (within the wait) and shows the counts of a sound ledger."""
    cache = ops_metrics.VerifyCache(engine, min_interval_s=60)
    got = cache.get(wait_s=30)
    assert got["status"] == "ok" and got["ok"] is True
    assert got["violation_count"] == 0 and got["entries"] == 0
    assert got["checked_at"] and got["running"] is False


def test_verify_cache_runs_at_most_once_per_interval_and_never_blocks() -> None:
    """A slow verify: callers get ``running`` after their short wait, then the result, and
    no second run starts within the interval; after it, the old result is served at once
    while one more run goes on."""
    release = threading.Event()
    clock = [1000.0]
    report = VerifyReport(entries=3, legs=3, accounts=2, lots=1, holds=0,
                          violations=(Violation("sign_rule", "a/wallet@p", "balance -1"),))

    def slow(_engine: object, _timeout: float) -> VerifyReport:
        release.wait(10)
        return report

    cache = ops_metrics.VerifyCache(None, min_interval_s=30, run=slow,  # type: ignore[arg-type]
                                    clock=lambda: clock[0])
    started = time.monotonic()
    assert cache.get(wait_s=0.2)["status"] == "running"
    assert cache.get(wait_s=0.2)["status"] == "running"
    assert time.monotonic() - started < 2
    release.set()
    got = cache.get(wait_s=5)
    assert got["status"] == "violations" and got["ok"] is False
    assert got["violations"] == [{"check": "sign_rule", "subject": "a/wallet@p",
                                  "detail": "balance -1"}]
    assert cache.runs == 1
    clock[0] += 10
    cache.get(wait_s=1)
    assert cache.runs == 1
    clock[0] += 30
    stale = cache.get(wait_s=5)  # the previous result at once, a new run under way
    assert stale["status"] == "violations" and stale["running"] is True
    deadline = time.monotonic() + 5
    while cache.runs < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.runs == 2
    assert cache.get(wait_s=0)["running"] is False


def test_verify_cache_reports_a_failing_verify() -> None:
    """An exception inside verify is a result (``error``), not a crash of the page."""

    def broken(_engine: object, _timeout: float) -> VerifyReport:
        raise RuntimeError("database went away")

    cache = ops_metrics.VerifyCache(None, run=broken)  # type: ignore[arg-type]
    got = cache.get(wait_s=5)
    assert got["status"] == "error"
    assert "database went away" in got["error"]


class _CountingLagReader:
    """A ConsumerLagReader that answers from memory and counts the probes."""

    def __init__(self) -> None:
        self.probes: list[tuple[str, float]] = []

    async def lag(self, group_id: str, *, timeout_s: float) -> dict[str, Any]:
        self.probes.append((group_id, timeout_s))
        return {"status": "ok", "group_id": group_id, "topics": {}, "total_lag": 7}


async def test_lag_comes_from_the_reader_the_dashboard_is_handed() -> None:
    """The lag cache asks only its reader (the port), for the configured group and timeout,
    and at most once per interval."""
    reader = _CountingLagReader()
    cache = ops_metrics.LagCache(reader, "points-exchange", min_interval_s=3600, timeout_s=2.0)
    first = await cache.get(wait_s=3)
    second = await cache.get(wait_s=3)
    assert first["total_lag"] == second["total_lag"] == 7
    assert reader.probes == [("points-exchange", 2.0)]
    await cache.close()


async def test_lag_is_unavailable_when_kafka_does_not_answer() -> None:
    """Nothing listens on the port: ``unavailable`` with the reason, within the timeout."""
    unreachable = KafkaConsumerLag(KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    cache = ops_metrics.LagCache(unreachable, "points-exchange", timeout_s=1.0)
    started = time.monotonic()
    got = await cache.get(wait_s=3)
    assert got["status"] == "unavailable"
    assert got["error"]
    assert time.monotonic() - started < 3
    await cache.close()


async def test_consumer_lag_per_topic_from_the_real_broker() -> None:
    """Committed offsets of a group against end offsets: lag per topic, summed over
    partitions; a topic the group never committed is not listed."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.structs import OffsetAndMetadata

    bootstrap = require_env("POINTS_KAFKA__BOOTSTRAP_SERVERS")
    topic = f"ops-lag-{uuid.uuid4().hex[:8]}"
    group = f"ops-lag-group-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, b"v", key=b"k", partition=i % 2)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, ""),
                               TopicPartition(topic, 1): OffsetAndMetadata(5, "")})
    finally:
        await consumer.stop()
    got = await consumer_lag(KafkaSettings(bootstrap_servers=bootstrap), group, timeout_s=10)
    assert got["status"] == "ok"
    assert got["topics"] == {topic: {"lag": 3, "end": 10, "committed": 7, "partitions": 2}}
    assert got["total_lag"] == 3
    reader = KafkaConsumerLag(KafkaSettings(bootstrap_servers=bootstrap))
    cache = ops_metrics.LagCache(reader, group, timeout_s=10)
    assert (await cache.get(wait_s=10))["topics"][topic]["lag"] == 3
    await cache.close()
    await asyncio.sleep(0)


@pytest.mark.parametrize("minutes,bucket_s", [(0, 5), (5, 0)])
def test_events_per_second_refuses_empty_windows(minutes: int, bucket_s: int) -> None:
    """A window or bucket of zero is a programming error, said plainly."""
    with pytest.raises(ValueError, match="positive"):
        ops_metrics.events_per_second(None, now=NOW, minutes=minutes,  # type: ignore[arg-type]
                                      bucket_s=bucket_s)
