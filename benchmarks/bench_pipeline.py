"""bench-pipeline: bank traffic through the real broker into one earning worker on PostgreSQL.

Measured in one run, on whatever machine runs it (the whole stack included):
- ``raw_consume_per_s``: plain aiokafka ``getmany`` over the same topic (the broker's limit);
- ``db_only_per_s``: ``EarningService.process`` fed the same messages from memory (the
  database path's limit);
- ``raw_batched_sql_per_s``: the rows an earning makes (entry, lot, leg and the balance the
  trigger keeps) written by plain batched SQL in batches of 1,000, no ledger logic
  (``benchmarks.bench_ledger``), interleaved with the ledger's own batch earn
  (``ledger_earn_per_s``); the issue's floor for one worker is half the raw figure
  (``target_events_per_s``);
- ``events_per_s``: one worker, from its first committed batch to its last (sustained); with
  ``--workers N``, from the moment the consumer group is stable with all N members;
- where the two cores went per event in the sustained run: ``worker_cpu_us_per_event`` (the
  worker and its lane processes), ``postgres_cpu_us_per_event`` (this stack's server and its
  backends, less the bench's own progress polls: ``bench_poll_cpu_us_per_event``; its
  background processes apart in ``postgres_background_cpu_us_per_event``),
  ``broker_cpu_us_per_event``, ``other_cpu_us_per_event`` (the rest of the machine: the OS,
  neighbours) and ``idle_cpu_us_per_event``; they add up to cores x 1,000,000 /
  ``events_per_s``. ``postgres_statement_us_per_event`` splits PostgreSQL's share by statement
  (pg_stat_statements execution time, benchmarks/pg_statements.py; the bench's polls left out);
- ``events_per_transaction`` (events per inbox COPY, one per earning transaction),
  ``replayed_events`` (events the inbox's replay check found already stored: the simulated
  day's duplicate deliveries, plus any a rebalance replays) and ``context_switches_per_event``
  (the whole machine's): what tells per-transaction, replay and concurrency costs apart;
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
import random
import signal
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

from benchmarks import bench_ledger, pg_statements, profiling
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
        "customer_nudges",
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


def postgres_background_pids(pids: list[int]) -> list[int]:
    """Of the server's processes, those that serve no client: the checkpointer, WAL writer,
    background writer, autovacuum (a client backend's title is ``postgres: user db host``)."""
    background = []
    for pid in pids:
        try:
            title = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            continue
        if "127.0.0.1(" not in title and "[local]" not in title:
            background.append(pid)
    return background


def backend_clients(engine: Engine) -> dict[int, int]:
    """Backend pid -> the pid of the local process on the other end of its connection (by the
    client's TCP port), for this database's client backends."""
    with engine.connect() as conn:
        ports = {
            int(port): int(pid)
            for pid, port in conn.execute(text(
                "SELECT pid, client_port FROM pg_stat_activity"
                " WHERE datname = current_database() AND client_port > 0"
            ))
        }  # fmt: skip
    owners: dict[int, int] = {}
    for connection in psutil.net_connections(kind="tcp"):
        if connection.laddr and connection.pid and connection.laddr.port in ports:
            owners[ports[connection.laddr.port]] = connection.pid
    return owners


def broker_pids(bootstrap: str) -> list[int]:
    """The processes listening on the bootstrap address's port (this stack's broker)."""
    port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
    return sorted({
        c.pid for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    })  # fmt: skip


def machine_cpu_s() -> tuple[float, float]:
    """Busy and idle CPU seconds of the whole machine so far (all cores)."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle, idle


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
    once a second until the end is near, then every 50 ms to time the end precisely.

    It polls on one connection of its own, whose backend's CPU (``poll_cpu_s``) the bench
    takes out of PostgreSQL's share: a run whose end comes slowly (two workers finishing
    unevenly) polls longer, and that is the bench's cost, not the pipeline's."""

    def __init__(self, engine: Any, expected: int) -> None:
        self._expected = expected
        self.count = 0
        self._conn = engine.connect()
        self.backend_pid = int(self._conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        self._conn.rollback()
        self._cpu_at_start = process_cpu_s([self.backend_pid])

    def done(self) -> bool:
        # marked: left out of the per-statement figures (benchmarks/pg_statements.py)
        self.count = int(self._conn.execute(text(
            f"SELECT count(*) FROM inbound_events {pg_statements.BENCH_MARKER}"
        )).scalar_one())  # fmt: skip
        self._conn.rollback()  # no snapshot held between polls
        return self.count >= self._expected

    def interval_s(self) -> float:
        return 0.05 if self.count >= self._expected * 0.97 else 1.0

    def poll_cpu_s(self) -> float:
        return process_cpu_s([self.backend_pid]) - self._cpu_at_start

    def close(self) -> None:
        self._conn.close()


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


def database_limits(pg_url: str, reps: int = 3) -> tuple[float, float]:
    """The ledger's batch earn and plain batched SQL of the same rows, in batches of 1,000 on
    20,000 customers in a schema of their own: medians of ``reps`` interleaved runs."""
    url = bench_ledger.fresh_pg(pg_url)
    engine = make_engine(url, pool_size=2)
    try:
        customers = [f"c{i}" for i in range(20_000)]
        keys = bench_ledger.Keys("k-")
        rng = random.Random(1)
        bench_ledger.create_customers(engine, customers, keys)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        bench_ledger.ledger_vs_raw(engine, customers, keys, 1, rng)  # warm-up
        runs = [bench_ledger.ledger_vs_raw(engine, customers, keys, 5, rng) for _ in range(reps)]
    finally:
        engine.dispose()
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


async def wait_for_stable_group(
    kafka: KafkaSettings, group: str, members: int, timeout_s: float = 120.0
) -> None:
    """Until the consumer group is Stable with ``members`` members (the broker's DescribeGroups)."""
    admin = kafka_clients.admin_client(kafka)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for response in await admin.describe_consumer_groups([group]):
                for described in response.groups:
                    state, group_members = described[2], described[5]
                    if state == "Stable" and len(group_members) == members:
                        log(f"group {group} stable with {members} members")
                        return
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    raise SystemExit(f"group {group} did not become stable with {members} members in {timeout_s} s")


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
    parser.add_argument(
        "--profile-worker",
        type=Path,
        metavar="FILE",
        help="py-spy the first worker and its lane processes during the sustained run "
        "(collapsed stacks, CPU samples only); the figures of a profiled run are lower",
    )
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

    log("raw batched SQL and the ledger's batch earn, interleaved (bench_ledger)")
    ledger_per_s, raw_sql_per_s = database_limits(args.pg_url)

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
        if args.workers > 1:
            # The first worker to join takes every partition; each later one triggers a
            # rebalance. Measure from the moment the group is stable with all of them: the
            # steady state, not the one-off hand-over (whose replays `replayed_events` shows).
            asyncio.run(wait_for_stable_group(settings.kafka, env["POINTS_WORKER__APP_ID"],
                                              args.workers))  # fmt: skip
        first_count = count_rows(engine, inbound_events)
        if first_count >= expected:
            raise SystemExit(
                "every event was committed before the measurement began (the group became "
                "stable too late): run with more --transactions"
            )
        first_at = time.perf_counter()
        worker_pids = with_descendants([w.pid for w in workers])
        statements = pg_statements.available(engine)
        if statements:
            pg_statements.reset(engine)
        else:
            log("pg_stat_statements is not loaded: restart the stack for PostgreSQL's breakdown")
        spy = None
        if args.profile_worker:
            spy = profiling.record(worker.pid, args.profile_worker, rate=100, gil=False)
        kafka_pids = broker_pids(bootstrap)
        progress = InboxProgress(engine, expected)
        switches_before = psutil.cpu_stats().ctx_switches
        cpu_before = (process_cpu_s(worker_pids), process_cpu_s(postgres_pids(engine)))
        backends_before = {pid: process_cpu_s([pid]) for pid in backend_clients(engine)}
        background_before = {
            pid: process_cpu_s([pid]) for pid in postgres_background_pids(postgres_pids(engine))
        }
        broker_before, machine_before = process_cpu_s(kafka_pids), machine_cpu_s()
        wait_for(progress.done, 900, "all events", worker, progress.interval_s)
        events_per_s = (expected - first_count) / (time.perf_counter() - first_at)
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(timeout=120)
        switches = psutil.cpu_stats().ctx_switches - switches_before
        statement_us = (
            pg_statements.per_event_us(engine, expected - first_count) if statements else {}
        )
        # Each earning batch is one transaction with one inbox COPY: events per transaction
        # says whether the per-transaction costs were spread as thinly as the batch size allows.
        batches, _ = (
            pg_statements.calls_and_rows(engine, "COPY inbound_events") if statements else (0, 0)
        )
        # The replay check's hits: events consumed a second time (after a rebalance moved a
        # partition before its offsets were committed) cost CPU but add nothing.
        _, replayed = (
            pg_statements.calls_and_rows(engine, "SELECT inbound_events") if statements else (0, 0)
        )
        for name, us in statement_us.items():
            log(f"  PostgreSQL {name}: {us} us/event")
        # Where the CPU went per event in the sustained run (PostgreSQL includes its
        # background processes): the two cores are shared, so this says what to cut.
        worker_cpu = process_cpu_s(worker_pids) - cpu_before[0]
        poll_cpu = progress.poll_cpu_s()
        progress.close()
        server_pids = postgres_pids(engine)
        # PostgreSQL's CPU by whom it served: the worker processes (relay, timers, consumer
        # side) or their lane processes (the earning transactions).
        clients = backend_clients(engine)
        main_pids = {w.pid for w in workers}
        served: dict[str, float] = {"lane_processes": 0.0, "worker_processes": 0.0}
        for backend, client in clients.items():
            if client in worker_pids:
                cpu = process_cpu_s([backend]) - backends_before.get(backend, 0.0)
                served["worker_processes" if client in main_pids else "lane_processes"] += cpu
        postgres_cpu = process_cpu_s(server_pids) - cpu_before[1] - poll_cpu
        background_cpu = sum(
            process_cpu_s([pid]) - background_before.get(pid, 0.0)
            for pid in postgres_background_pids(server_pids)
        )
        broker_cpu = process_cpu_s(kafka_pids) - broker_before
        machine_busy, machine_idle = (
            now - before for now, before in zip(machine_cpu_s(), machine_before, strict=True)
        )
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
        "raw_batched_sql_per_s": round(raw_sql_per_s),
        "ledger_earn_per_s": round(ledger_per_s),
        "target_events_per_s": round(raw_sql_per_s / 2),
        "produce_per_s": round(produce_per_s),
        "worker_cpu_us_per_event": round(worker_cpu * per_event, 1),
        "postgres_cpu_us_per_event": round(postgres_cpu * per_event, 1),
        "broker_cpu_us_per_event": round(broker_cpu * per_event, 1),
        # of which the server's background processes (checkpoints, WAL writing, autovacuum)
        "postgres_background_cpu_us_per_event": round(background_cpu * per_event, 1),
        # of which client backends serving the workers' lanes and the workers' main processes
        "postgres_cpu_us_per_event_serving": {
            name: round(cpu * per_event, 1) for name, cpu in served.items()
        },
        # the bench's own count(*) polls of the inbox (not in PostgreSQL's figure above)
        "bench_poll_cpu_us_per_event": round(poll_cpu * per_event, 1),
        # everything else that ran: this bench's poller, the OS, other processes on the machine
        "other_cpu_us_per_event": round(
            (machine_busy - worker_cpu - postgres_cpu - broker_cpu - poll_cpu) * per_event, 1
        ),
        "idle_cpu_us_per_event": round(machine_idle * per_event, 1),
        "postgres_statement_us_per_event": statement_us,
        "events_per_transaction": round((expected - first_count) / batches) if batches else None,
        "replayed_events": replayed if statements else None,
        "context_switches_per_event": round(switches * per_event / 1e6, 2),
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
