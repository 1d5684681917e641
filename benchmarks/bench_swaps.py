"""bench-swaps: outbound swap round trips through the whole stack.

    python -m benchmarks.bench_swaps [--pg-url URL] [--customers N] [--swaps N] [--chunk N]

Many customers swap bank points to ridehail through the simulated partner (zero latency, no
rejections): the bench process accepts quotes in chunks (``ExchangeService.open_swaps``: hold,
swap row and signed request in one transaction per chunk); ``python -m streams.partner_worker``
relays the requests, the simulator (``python -m adapters.simulator``) confirms them, and the
worker posts the holds. A poller (every 10 ms) observes completions in the database: a commit
is the only way a completion becomes visible, so latency never under-reports.

- ``swaps_per_s``: completed round trips / (last completion observed - first request);
- ``p50_ms`` / ``p99_ms``: request committed -> completion observed;
- ``half_finished``: swaps not final, or whose ledger state disagrees with their status
  (must be 0); ``verify_ok``: the ledger's invariants after the run.

Works in the bench database (default: POINTS_BENCH_PG_URL, the devstack's ``points_bench``; its
public schema is dropped and recreated each run) and its own topic names. The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from adapters.config import load_partners_config, resolve_keys
from adapters.registry import build_registry
from adapters.topics import PartnerTopics
from points.db import make_engine
from points.exchange import ExchangeService, SwapOrder
from points.exchange.tables import partner_links, swaps
from points.ledger import AccountRef, Earn, account_balance, apply_batch, verify
from points.migrate import upgrade
from points.settings import Settings, load_settings
from streams.topics import ensure_topics_sync

ROOT = Path(__file__).resolve().parent.parent
PARTNER = "ridehail"
POINTS = 400


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_url() -> str | None:
    """The devstack's bench database (``points_bench``, POINTS_BENCH_PG_URL). Its public schema
    is the bench's to drop, as bench-pipeline does; bench-ledger and bench-api keep to schemas
    of their own. The benches run one at a time."""
    return os.environ.get("POINTS_BENCH_PG_URL") or None


def reset_database(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)


def _is_kafka_connection(name: str) -> bool:
    return name.startswith("POINTS_KAFKA__") and not name.startswith("POINTS_KAFKA__TOPICS__")


def isolated_env(url: str, bootstrap: str, suffix: str, keys_env: dict[str, str]) -> dict[str, str]:
    # The connection settings (POINTS_KAFKA__SECURITY_PROTOCOL, __SASL_*, __SSL_*) pass through.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("POINTS_") or _is_kafka_connection(k)}
    env.update(keys_env)
    env.update(
        {
            "POINTS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "POINTS_DATABASE__URL": url,
            "POINTS_WORKER__APP_ID": f"bench-swaps-{suffix}",
            "POINTS_WORKER__BATCH_SIZE_MAX": "1000",
            "POINTS_WORKER__SESSION_TIMEOUT_MS": "10000",
            "POINTS_WORKER__COMMIT_INTERVAL_MS": "200",
            "POINTS_PARTNER_TOPIC_PREFIX": f"bs{suffix}.",
            "POINTS_REFERRAL_SECRET": secrets.token_hex(32),
        }
    )
    for name in ("bank_transactions", "bank_customers", "customer_activity", "points_ledger",
                 "points_dlq"):
        env[f"POINTS_KAFKA__TOPICS__{name.upper()}"] = f"bs{suffix}.{name.replace('_', '.')}"
    return env


def settings_for(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def setup(service: ExchangeService, customers: list[str], per_customer: int) -> None:
    """Fund and link every customer directly (not measured)."""
    engine = service.engine
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for start in range(0, len(customers), 5000):
            chunk = customers[start : start + 5000]
            apply_batch(conn, [Earn(f"fund:{c}", c, per_customer, now + timedelta(days=365))
                               for c in chunk], now=now)
        conn.execute(partner_links.insert(), [
            {"customer_id": c, "partner_id": PARTNER, "partner_member_id": f"R-{c}",
             "status": "linked", "request_id": f"bench-link-{c}", "referral_id": None,
             "reason": None, "updated_at": now}
            for c in customers
        ])


class Poller(threading.Thread):
    """Observes completions: swap id -> monotonic time first seen final."""

    def __init__(self, url: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(url, pool_size=1)
        self.expected = expected
        self.seen: dict[str, float] = {}
        self.status: dict[str, str] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        since = datetime(1970, 1, 1, tzinfo=UTC)
        while not self.stop.is_set() and len(self.seen) < self.expected:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(swaps.c.swap_id, swaps.c.status, swaps.c.updated_at)
                    .where(swaps.c.status.in_(("completed", "rejected", "expired")),
                           swaps.c.updated_at >= since)
                ).all()
            t = time.monotonic()
            for swap_id, status, updated in rows:
                if swap_id not in self.seen:
                    self.seen[swap_id] = t
                    self.status[swap_id] = status
                    since = max(since, updated - timedelta(seconds=5))
            time.sleep(0.01)
        self.engine.dispose()


def start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    handle = log_path.open("ab")
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def half_finished(service: ExchangeService) -> tuple[int, bool, int]:
    """Swaps not final or disagreeing with the ledger; verify; completed points."""
    with service.engine.connect() as conn:
        open_count = int(conn.execute(
            select(func.count()).select_from(swaps).where(
                swaps.c.status.in_(("requested", "pending")))).scalar_one())
        # completed <-> posted hold, everything else <-> no posted hold
        mismatched = int(conn.execute(text(
            """
            SELECT count(*) FROM swaps s
            LEFT JOIN ledger_entries e
                   ON e.idempotency_key = 'swap' || chr(58) || s.swap_id || chr(58) || 'hold'
            LEFT JOIN ledger_hold_resolutions r ON r.hold_entry_id = e.id
            WHERE (s.status = 'completed') <> (coalesce(r.outcome, '') = 'posted')
               OR (s.status IN ('rejected', 'expired') AND e.id IS NOT NULL AND r.outcome IS NULL)
            """)).scalar_one())
        completed = int(conn.execute(
            select(func.coalesce(func.sum(swaps.c.points), 0)).where(
                swaps.c.status == "completed")).scalar_one())
        clearing = account_balance(conn, AccountRef.clearing("bank", PARTNER))
    with service.engine.connect() as conn, conn.begin():
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        ok = verify(conn).ok
    return open_count + mismatched + (0 if clearing == completed else 1), ok, completed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_swaps")
    parser.add_argument("--pg-url", default=os.environ.get("POINTS_BENCH_SWAPS_PG_URL")
                        or default_url())
    parser.add_argument("--customers", type=int, default=0, help="default: one per swap")
    parser.add_argument("--swaps", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered swaps/s (0: as fast as the API accepts them)")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if not args.pg_url:
        log("missing: POINTS_BENCH_PG_URL (run `make bench-swaps`, which starts the stack)")
        return 2
    bootstrap = os.environ.get("POINTS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    suffix = uuid.uuid4().hex[:8]
    config = load_partners_config()
    keys_env = {p.signing_keys[0].env: secrets.token_hex(32) for p in config.partners.values()}
    env = isolated_env(args.pg_url, bootstrap, suffix, keys_env)
    settings = settings_for(env)
    load_before = os.getloadavg()[0]
    log(f"database {args.pg_url}; topics prefix bs{suffix}.")
    reset_database(args.pg_url)
    topics = PartnerTopics(prefix=f"bs{suffix}.", names=settings.kafka.topics)
    ensure_topics_sync(settings, [t for p in config.partners
                                  for t in (topics.events(p), topics.requests(p))])
    engine = make_engine(args.pg_url, pool_size=4)
    registry = build_registry(config, resolve_keys(config, keys_env), topics)
    service = ExchangeService(engine, registry, settings.kafka.topics,
                              referral_secret=b"b" * 32, zone=config.zone)
    # one quote per (customer, instant) is one quote id: distinct customers per chunk
    customers = [f"bc{i:06d}" for i in range(args.customers or args.swaps)]
    per_swap_rounds = -(-args.swaps // len(customers))
    setup(service, customers, POINTS * per_swap_rounds + 1000)
    quotes = []
    for start_at in range(0, args.swaps, 5000):
        batch = [(customers[i % len(customers)], PARTNER, POINTS)
                 for i in range(start_at, min(args.swaps, start_at + 5000))]
        quotes.extend(service.quote_many(batch))
    orders = [SwapOrder(customers[i % len(customers)], q.quote_id) for i, q in enumerate(quotes)]
    log(f"set up {len(customers)} customers, {len(orders)} quotes")

    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-swaps-{suffix}"
    logs.mkdir(parents=True, exist_ok=True)
    sim = start(["adapters.simulator", "--partner", PARTNER, "--topic-prefix", f"bs{suffix}.",
                 "--latency-ms", "0", "--reject-rate", "0", "--quiet"], env, logs / "simulator.log")
    worker = start(["streams.partner_worker"], env, logs / "worker.log")
    result: dict[str, Any] = {"benchmark": "bench_swaps"}
    try:
        # warm-up round trip (worker and simulator joined their groups)
        warm_customer = "warmup"
        setup(service, [warm_customer], 10_000)
        warm = service.open_swaps([SwapOrder(warm_customer, service.quote(
            warm_customer, PARTNER, POINTS).quote_id)])[0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            view = service.swap_status(warm_customer, warm.swap_id)  # type: ignore[union-attr]
            if view is not None and view.status != "pending":
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("warm-up swap never completed; see " + str(logs))
        log("warm-up round trip done; measuring")
        poller = Poller(args.pg_url, len(orders) + 1)
        poller.seen[warm.swap_id] = 0.0  # type: ignore[union-attr]
        poller.start()
        requested: dict[str, float] = {}
        first = time.monotonic()
        for i in range(0, len(orders), args.chunk):
            if args.rate:
                due = first + i / args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            views = service.open_swaps(orders[i : i + args.chunk])
            t = time.monotonic()
            for v in views:
                requested[getattr(v, "swap_id", "")] = t
        offered_s = time.monotonic() - first
        log(f"{len(requested)} swaps requested in {offered_s:.1f}s")
        poller.join(timeout=args.timeout)
        poller.stop.set()
        done = {k: v for k, v in poller.seen.items() if k in requested}
        completed = [k for k in done if poller.status.get(k) == "completed"]
        latencies = sorted((done[k] - requested[k]) * 1000 for k in completed)
        last = max(done.values()) if done else time.monotonic()
        hf, ok, points_out = half_finished(service)
        result.update({
            "swaps_requested": len(requested),
            "swaps_completed": len(completed),
            "swaps_per_s": round(len(completed) / (last - first), 1) if completed else 0.0,
            "offered_per_s": round(len(requested) / offered_s, 1),
            "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
            "half_finished": hf,
            "verify_ok": ok,
            "points_out": points_out,
            "customers": len(customers),
            "chunk": args.chunk,
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
        })
        result["floors_ok"] = bool(result["swaps_per_s"] >= 1000 and hf == 0 and ok)
    finally:
        stop(worker)
        stop(sim)
        engine.dispose()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
