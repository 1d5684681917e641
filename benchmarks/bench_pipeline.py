"""bench-pipeline: bank traffic through the real broker into one earning worker on PostgreSQL.

Measured in one run, on whatever machine runs it (the whole stack included):
- ``raw_consume_per_s``: plain aiokafka ``getmany`` over the same topic (the broker's limit);
- ``db_only_per_s``: ``EarningService.process`` fed the same messages from memory (the
  database path's limit);
- ``events_per_s``: one worker, from its first committed batch to its last (sustained);
- ``p50_ms`` / ``p99_ms``: publish → committed, at a fixed 1,000 events/s, where "committed"
  is the moment a poller (every 5 ms) first sees the event's inbox row: a commit is the only
  way a row becomes visible, so this never under-reports.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine, func, select, text

from points.db import make_engine
from points.decoding import RawMessage
from points.earning import EarningService
from points.inbox import inbound_events
from points.migrate import upgrade
from points.rules import load_ruleset
from points.settings import KafkaSettings, Settings, load_settings
from simulation.traffic import generate_day
from streams import kafka_clients
from streams.topics import ensure_topics_sync

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def reset_database(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)


def _is_kafka_connection(name: str) -> bool:
    return name.startswith("POINTS_KAFKA__") and not name.startswith("POINTS_KAFKA__TOPICS__")


def isolated_env(url: str, bootstrap: str, suffix: str, batch_size_max: int) -> dict[str, str]:
    # The connection settings (POINTS_KAFKA__SECURITY_PROTOCOL, __SASL_*, __SSL_*) pass through.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("POINTS_") or _is_kafka_connection(k)}
    env.update(
        {
            "POINTS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "POINTS_DATABASE__URL": url,
            "POINTS_WORKER__APP_ID": f"bench-{suffix}",
            "POINTS_WORKER__BATCH_SIZE_MAX": str(batch_size_max),
            "POINTS_WORKER__BATCH_WAIT_MS": "20",
            "POINTS_WORKER__SESSION_TIMEOUT_MS": "10000",
        }
    )
    for name in (
        "bank_transactions",
        "bank_customers",
        "customer_activity",
        "points_ledger",
        "points_dlq",
    ):
        env[f"POINTS_KAFKA__TOPICS__{name.upper()}"] = f"b{suffix}.{name.replace('_', '.')}"
    return env


def settings_for(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def produce(kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = kafka_clients.producer(kafka, linger_ms=5, max_batch_size=262_144)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = [await producer.send(topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(records) / (time.perf_counter() - started)


async def raw_consume(kafka: KafkaSettings, topic: str, expected: int) -> float:
    consumer = kafka_clients.consumer(
        kafka,
        topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and batch:
                started = time.perf_counter()
            seen += sum(len(v) for v in batch.values())
    finally:
        await consumer.stop()
    assert started is not None
    return expected / (time.perf_counter() - started)


def db_only(
    url: str,
    settings: Settings,
    records: list[tuple[bytes, bytes]],
    profiles: list[tuple[bytes, bytes]],
    batch: int,
) -> float:
    reset_database(url)
    engine = make_engine(url)
    service = EarningService(engine, load_ruleset(settings.rules.path), settings.kafka.topics)
    topics = settings.kafka.topics
    service.process(
        [RawMessage(topics.bank_customers, 0, i, k, v) for i, (k, v) in enumerate(profiles)]
    )
    raw = [RawMessage(topics.bank_transactions, 0, i, k, v) for i, (k, v) in enumerate(records)]
    started = time.perf_counter()
    for start in range(0, len(raw), batch):
        service.process(raw[start : start + batch])
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(raw) / elapsed


def count_rows(engine: Any, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_file = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "streams.worker"],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def process_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux /proc)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def with_descendants(pids: list[int]) -> list[int]:
    """These processes and every process below them (a worker's lane processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found = set(pids)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        grew = bool(more)
        found |= more
    return sorted(found)


def postgres_pids(engine: Engine) -> list[int]:
    """The stack's PostgreSQL server and its backends: the parent of this connection's backend
    and that server's children. Only this server: other PostgreSQL servers on the machine (a
    second checkout's stack, another project's) must not count in the CPU per event."""
    with engine.connect() as connection:
        backend_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    server = psutil.Process(backend_pid).parent()
    if server is None:
        raise SystemExit(f"PostgreSQL backend {backend_pid} has no parent process to measure")
    return [server.pid, *(child.pid for child in server.children(recursive=True))]


def wait_for(
    predicate: Any,
    timeout_s: float,
    what: str,
    worker: subprocess.Popen[bytes],
    interval_s: Any = lambda: 0.05,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker.poll() is not None:
            raise SystemExit(f"worker exited ({worker.returncode}) while waiting for {what}")
        time.sleep(interval_s())
    raise SystemExit(f"timed out waiting for {what}")


class InboxProgress:
    """How many events the worker has committed, polled without loading the database under
    test: ``count(*)`` over a growing inbox is a scan (tens of ms at 200k rows), so it runs
    once a second until the end is near, then every 50 ms to time the end precisely."""

    def __init__(self, engine: Any, expected: int) -> None:
        self._engine = engine
        self._expected = expected
        self.count = 0

    def done(self) -> bool:
        self.count = count_rows(self._engine, inbound_events)
        return self.count >= self._expected

    def interval_s(self) -> float:
        return 0.05 if self.count >= self._expected * 0.97 else 1.0


async def latency_run(
    kafka: KafkaSettings, topic: str, url: str, rate_per_s: int, seconds: int, tag: str
) -> list[float]:
    """Publish ``rate_per_s`` purchases for ``seconds``; return publish→visible latencies (ms)."""
    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    lock = threading.Lock()
    stop = threading.Event()
    engine = make_engine(url)

    def poll() -> None:
        query = text("SELECT event_id FROM inbound_events WHERE event_id = ANY(:ids)")
        with engine.connect() as conn:
            while not stop.is_set() or len(seen_at) < len(sent_at):
                with lock:
                    unseen = [k for k in sent_at if k not in seen_at]
                if unseen:
                    found = conn.execute(query, {"ids": unseen}).scalars().all()
                    conn.commit()
                    now = time.perf_counter()
                    for event_id in found:
                        seen_at[event_id] = now
                time.sleep(0.005)
                if stop.is_set() and time.perf_counter() - stop_time[0] > 30:
                    break

    stop_time = [0.0]
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    producer = kafka_clients.producer(kafka, linger_ms=0)
    await producer.start()
    try:
        tick_s = 0.01
        per_tick = max(1, rate_per_s // 100)
        started = time.perf_counter()
        n = 0
        for tick in range(int(seconds / tick_s)):
            target = started + tick * tick_s
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            for _ in range(per_tick):
                event_id = f"{tag}-lat-{n}"
                customer = f"{tag}-lat-c{n % 5000}"
                body = {
                    "event_type": "purchase",
                    "event_id": event_id,
                    "customer_id": customer,
                    "amount_minor": 5_000,
                    "currency": "CNY",
                    "mcc": "5411",
                    "merchant_id": "M-00001",
                    "channel": "card_present",
                    "occurred_at": datetime.now(UTC).isoformat(),
                }
                with lock:
                    sent_at[event_id] = time.perf_counter()
                await producer.send(topic, key=customer.encode(), value=json.dumps(body).encode())
                n += 1
        await producer.flush()
    finally:
        await producer.stop()
    stop_time[0] = time.perf_counter()
    stop.set()
    await asyncio.to_thread(poller.join, 40)
    engine.dispose()
    return [(seen_at[k] - sent_at[k]) * 1000 for k in sent_at if k in seen_at]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes in the group (the floor is for 1)"
    )
    parser.add_argument("--latency-seconds", type=int, default=15)
    parser.add_argument(
        "--worker-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra POINTS_ setting for the worker, e.g. WORKER__DB_LANES=1 (repeatable)",
    )
    parser.add_argument("--pg-url", default=os.environ.get("POINTS_BENCH_PG_URL"))
    args = parser.parse_args()
    if not args.pg_url:
        raise SystemExit(
            "missing: POINTS_BENCH_PG_URL (run `make bench-pipeline`, which starts the stack)"
        )
    bootstrap = os.environ.get("POINTS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    suffix = uuid.uuid4().hex[:8]
    env = isolated_env(args.pg_url, bootstrap, suffix, args.batch_size)
    for setting in args.worker_setting:
        name, _, value = setting.partition("=")
        env[f"POINTS_{name.upper()}"] = value
    settings = settings_for(env)
    ensure_topics_sync(settings)
    topics = settings.kafka.topics

    log(f"generating a day: {args.transactions} purchases, {args.customers} customers")
    day = generate_day(
        seed=7, customers=args.customers, transactions=args.transactions, prefix=suffix
    )
    log(f"publishing {len(day.customers)} profiles and {len(day.transactions)} transactions")
    asyncio.run(produce(settings.kafka, topics.bank_customers, day.customers))
    produce_per_s = asyncio.run(
        produce(settings.kafka, topics.bank_transactions, day.transactions)
    )

    log("raw consume (plain aiokafka getmany)")
    raw_per_s = asyncio.run(
        raw_consume(settings.kafka, topics.bank_transactions, len(day.transactions))
    )

    log("database path fed from memory")
    db_per_s = db_only(args.pg_url, settings, day.transactions, day.customers, args.batch_size)

    log("one worker through the broker")
    reset_database(args.pg_url)
    engine = make_engine(args.pg_url)
    log_path = ROOT / "data" / f"bench-pipeline-{suffix}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    workers = [start_worker(env, log_path) for _ in range(args.workers)]
    worker = workers[0]
    expected_profiles = len(day.customers)
    expected = expected_profiles + day.distinct_valid_transactions
    try:
        wait_for(lambda: count_rows(engine, inbound_events) > 0, 120, "the first batch", worker)
        first_count = count_rows(engine, inbound_events)
        first_at = time.perf_counter()
        worker_pids = with_descendants([w.pid for w in workers])
        cpu_before = (process_cpu_s(worker_pids), process_cpu_s(postgres_pids(engine)))
        progress = InboxProgress(engine, expected)
        wait_for(progress.done, 900, "all events", worker, progress.interval_s)
        events_per_s = (expected - first_count) / (time.perf_counter() - first_at)
        # Where the CPU went per event in the sustained run (PostgreSQL includes its
        # background processes): the two cores are shared, so this says what to cut.
        worker_cpu = process_cpu_s(worker_pids) - cpu_before[0]
        postgres_cpu = process_cpu_s(postgres_pids(engine)) - cpu_before[1]
        per_event = 1e6 / (expected - first_count)

        log(f"latency at 1,000 events/s for {args.latency_seconds} s")
        latencies = asyncio.run(
            latency_run(
                settings.kafka, topics.bank_transactions, args.pg_url, 1000,
                args.latency_seconds, suffix,
            )
        )
    finally:
        for each in workers:
            each.terminate()
        for each in workers:
            each.wait(timeout=60)
        engine.dispose()
    sent = 1000 * args.latency_seconds
    result = {
        "events": expected - expected_profiles,
        "events_per_s": round(events_per_s),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "latency_samples": len(latencies),
        "latency_lost": sent - len(latencies),
        "raw_consume_per_s": round(raw_per_s),
        "db_only_per_s": round(db_per_s),
        "produce_per_s": round(produce_per_s),
        "worker_cpu_us_per_event": round(worker_cpu * per_event, 1),
        "postgres_cpu_us_per_event": round(postgres_cpu * per_event, 1),
        "worker_vs_db_only": round(events_per_s / db_per_s, 2),
        "worker_vs_raw_consume": round(events_per_s / raw_per_s, 3),
        "batch_size_max": args.batch_size,
        "workers": args.workers,
        "partitions": settings.kafka.topic_partitions,
        "cores": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
