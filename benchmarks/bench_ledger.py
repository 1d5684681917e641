"""Ledger benchmark: PostgreSQL and SQLite earning throughput, hot accounts, two writers, raw SQL.

Run: ``python -m benchmarks.bench_ledger [--pg-url URL] [--quick]`` (URL defaults to the
environment variable POINTS_BENCH_PG_URL). On PostgreSQL everything happens in a schema of its
own (``bench_ledger``, dropped and recreated each run), so the database's other contents are
left alone. The last line printed is one JSON object with the results.

What is measured (every earning: entry header with reason, leg, lot, balance updates):

- ``pg_earn_per_s_b{1,100,1000}``: one writer, batch size 1, 100, 1,000, one transaction each.
- ``pg_hot_account_ratio``: two writers, 80% of earnings funded by one partner's clearing
  account, divided by the same with the funding spread over 50 partners.
- ``pg_two_writers_per_s``: two writer processes, disjoint customers, shared hot accounts.
- ``deadlocks``: deadlocks seen by any writer (each would be retried; the floor is zero).
- ``pg_raw_per_s_b1000``: the same rows (entries, legs, lots, and the balance updates the
  schema's trigger makes) written by plain batched SQL with no ledger logic, interleaved
  batch by batch with the ledger run so both see the same machine load.
- ``verify_entries_per_s``, ``bytes_per_entry`` (PostgreSQL tables + indexes / entries).

Each batch runs as the workers run theirs: with Python's cycle collector paused for the batch
(``streams.runtime.without_cycle_collector``; the ledger itself leaves the collector alone).

Every rate is the median of ``--reps`` repetitions (at least 3; 5 by default, 3 with
``--quick``); ``spread`` gives each rate's [min, max] over the repetitions, and the machine's
load average (1, 5, 15 minutes) is recorded before and after the run: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from points.db import make_engine
from points.ledger import Earn, Operation, OperationResult, Reason, verify
from points.ledger import apply_batch as ledger_apply_batch
from points.ledger.model import request_hash
from points.migrate import upgrade
from points.pgarrays import int_array_literal as _ints
from points.pgarrays import text_array_literal as _texts
from streams.runtime import without_cycle_collector

SCHEMA = "bench_ledger"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=365)


def apply_batch(conn: Connection, ops: Sequence[Operation], *,
                now: datetime) -> list[OperationResult]:
    """One batch as a worker applies it: the cycle collector paused meanwhile."""
    return without_cycle_collector(partial(ledger_apply_batch, now=now), conn, ops)


FLOORS = {
    "pg_earn_per_s_b1000": 15_000,
    "pg_hot_account_ratio": 0.5,
    "sqlite_earn_per_s_b1000": 10_000,
    "ratio_earn_to_raw_b1000": 0.6,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- setup ----------------------------------------------------------------------------


def schema_url(pg_url: str) -> str:
    separator = "&" if "?" in pg_url else "?"
    return f"{pg_url}{separator}options={quote(f'-csearch_path={SCHEMA}')}"


def fresh_pg(pg_url: str) -> str:
    engine = make_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    finally:
        engine.dispose()
    url = schema_url(pg_url)
    upgrade(url)
    return url


class Keys:
    """Unique idempotency keys across the whole run (and across writer processes)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n}"


def earnings(keys: Keys, customers: Sequence[str], count: int, rng: random.Random,
             partner: Callable[[], str | None] = lambda: None) -> list[Operation]:
    ops: list[Operation] = []
    for _ in range(count):
        key = keys()
        funder = partner()
        ops.append(Earn(
            key, rng.choice(customers), rng.randint(1, 500), EXPIRES,
            kind="swap" if funder else "earn", from_partner=funder,
            reason=Reason(rule_ids=("base-1pct",), ruleset_version="2026.06",
                          source_event=f"tx-{key}"),
        ))
    return ops


def create_customers(engine: Engine, customers: Sequence[str], keys: Keys) -> None:
    for start in range(0, len(customers), 2000):
        chunk = customers[start:start + 2000]
        with engine.begin() as conn:
            apply_batch(conn, [Earn(keys(), c, 1, EXPIRES) for c in chunk], now=NOW)


def run_batches(engine: Engine, ops: Sequence[Operation], batch_size: int) -> float:
    """Apply ops in batches (one transaction each); return earnings per second."""
    started = time.perf_counter()
    for start in range(0, len(ops), batch_size):
        with engine.begin() as conn:
            apply_batch(conn, ops[start:start + batch_size], now=NOW)
    return len(ops) / (time.perf_counter() - started)


# --- raw SQL baseline -----------------------------------------------------------------


def account_ids(engine: Engine, customers: Sequence[str]) -> tuple[dict[str, int], int]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT owner, kind, id FROM ledger_accounts WHERE program = 'bank'"
            " AND kind IN ('wallet', 'issuance')")).all()
    wallets = {owner: i for owner, kind, i in rows if kind == "wallet"}
    issuance = next(i for _, kind, i in rows if kind == "issuance")
    return {c: wallets[c] for c in customers}, issuance


def raw_batch(engine: Engine, ops: Sequence[Earn], wallets: dict[str, int],
              issuance: int) -> float:
    """Write the rows an earning makes with plain batched SQL: no lookups, no decisions."""
    started = time.perf_counter()
    with engine.begin() as conn:
        ids = [r[0] for r in conn.exec_driver_sql(
            "SELECT nextval('ledger_entries_id_seq') FROM generate_series(1, %s)",
            (len(ops),)).fetchall()]
        reasons = [json.dumps(op.reason.to_json(), separators=(",", ":")) for op in ops]
        conn.exec_driver_sql(
            "INSERT INTO ledger_entries (id, idempotency_key, kind, status, request_hash,"
            " program, customer_id, amount, reason, created_at)"
            " SELECT i, k, 'earn', 'committed', h, 'bank', c, a, r::json, %s"
            " FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[], %s::bigint[],"
            " %s::text[]) AS x(i, k, h, c, a, r)",
            (NOW, _ints(ids), _texts([op.idempotency_key for op in ops]),
             _ints([request_hash(op) for op in ops]), _texts([op.customer_id for op in ops]),
             _ints([op.amount for op in ops]), _texts(reasons)),
        )
        conn.exec_driver_sql(
            "INSERT INTO ledger_lots (entry_id, account_id, expires_at, amount, remaining)"
            " SELECT e, a, %s, m, m FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])"
            " AS t(e, a, m)",
            (EXPIRES, _ints(ids), _ints([wallets[op.customer_id] for op in ops]),
             _ints([op.amount for op in ops])),
        )
        conn.exec_driver_sql(
            "INSERT INTO ledger_legs (entry_id, leg_no, debit_account_id, credit_account_id,"
            " amount) SELECT e, 0, %s, w, m FROM unnest(%s::bigint[], %s::bigint[],"
            " %s::bigint[]) AS t(e, w, m)",
            (issuance, _ints(ids), _ints([wallets[op.customer_id] for op in ops]),
             _ints([op.amount for op in ops])),
        )
    return time.perf_counter() - started


def ledger_vs_raw(engine: Engine, customers: Sequence[str], keys: Keys, batches: int,
                  rng: random.Random) -> tuple[float, float]:
    """Interleave ledger and raw batches of 1,000 so both see the same load."""
    wallets, issuance = account_ids(engine, customers)
    ledger_s = raw_s = 0.0
    for _ in range(batches):
        ops = earnings(keys, customers, 1000, rng)
        started = time.perf_counter()
        with engine.begin() as conn:
            apply_batch(conn, ops, now=NOW)
        ledger_s += time.perf_counter() - started
        raw_ops = earnings(keys, customers, 1000, rng)
        raw_s += raw_batch(engine, [op for op in raw_ops if isinstance(op, Earn)], wallets,
                           issuance)
    return batches * 1000 / ledger_s, batches * 1000 / raw_s


# --- two writers (processes) ----------------------------------------------------------


def _writer(url: str, name: str, customers: list[str], batches: int, hot_share: float,
            partners: int, seed: int, barrier: Any, out: Any) -> None:
    rng = random.Random(seed)
    engine = make_engine(url, pool_size=1)
    keys = Keys(f"{name}-")

    def partner() -> str | None:
        if partners == 0:
            return None  # funded by the bank's issuance account
        if rng.random() < hot_share:
            return "p0"
        return f"p{rng.randrange(partners)}"

    work = [earnings(keys, customers, 1000, rng, partner) for _ in range(batches)]
    deadlocks = 0
    barrier.wait()
    started = time.perf_counter()
    for ops in work:
        while True:
            try:
                with engine.begin() as conn:
                    apply_batch(conn, ops, now=NOW)
                break
            except DBAPIError as exc:
                if "deadlock" not in str(exc).lower():
                    raise
                deadlocks += 1  # counted against the floor, then retried
    elapsed = time.perf_counter() - started
    engine.dispose()
    out.put((name, batches * 1000, elapsed, deadlocks))


def two_writers(url: str, customers: Sequence[str], batches: int, hot_share: float,
                partners: int, tag: str) -> tuple[float, int]:
    """Two processes on disjoint customers; return (earnings/s over both, deadlocks)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    half = len(customers) // 2
    procs = [
        ctx.Process(target=_writer, args=(url, f"{tag}{w}", list(part), batches, hot_share,
                                          partners, 17 + w, barrier, out))
        for w, part in enumerate((customers[:half], customers[half:]))
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        if proc.exitcode != 0:
            raise RuntimeError(f"writer exited with {proc.exitcode}")
    total = sum(r[1] for r in results)
    wall = max(r[2] for r in results)
    return total / wall, sum(r[3] for r in results)


# --- main -----------------------------------------------------------------------------


def bytes_per_entry(engine: Engine) -> float:
    with engine.connect() as conn:
        size = conn.execute(text(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :s AND c.relkind = 'r' AND c.relname LIKE 'ledger_%'"),
            {"s": SCHEMA}).scalar_one()
        entries = conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
    return round(float(size) / max(int(entries), 1), 1)


def measure_verify(engine: Engine) -> float:
    with engine.connect() as conn:
        started = time.perf_counter()
        report = verify(conn)
        elapsed = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"verify found violations: {report.violations[:5]}")
    return report.entries / elapsed


def sqlite_b1000(batches: int, customer_count: int, reps: int) -> list[float]:
    """``reps`` runs of ``batches`` batches of 1,000 on one SQLite ledger; a rate per run."""
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        upgrade(url)
        engine = make_engine(url)
        customers = [f"s{i}" for i in range(customer_count)]
        keys = Keys("sq-")
        create_customers(engine, customers, keys)
        rates = [run_batches(engine, earnings(keys, customers, batches * 1000, rng), 1000)
                 for _ in range(reps)]
        with engine.connect() as conn:
            if not verify(conn).ok:
                raise RuntimeError("SQLite ledger does not verify")
        engine.dispose()
    return rates


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Rates:
    """Each measurement's repetitions; the result is their median, the spread min and max."""

    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = {}

    def add(self, name: str, value: float) -> None:
        self.runs.setdefault(name, []).append(value)
        log(f"  {name}: {value:.3f}" if value < 10 else f"  {name}: {value:.0f}")

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])

    def spread(self) -> dict[str, list[float]]:
        return {name: [round(min(v), 3), round(max(v), 3)] for name, v in self.runs.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("POINTS_BENCH_PG_URL"))
    parser.add_argument("--quick", action="store_true", help="fewer batches (a smoke run)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions per rate, median reported (default 5; 3 if --quick)")
    args = parser.parse_args(argv)
    if not args.pg_url:
        parser.error("give --pg-url or set POINTS_BENCH_PG_URL")
    reps = max(3, args.reps or (3 if args.quick else 5))
    scale = 1 if args.quick else 2
    rng = random.Random(1)
    load_before = load_avg()
    log(f"load average before: {load_before} on {os.cpu_count()} cpus; {reps} repetitions")
    rates = Rates()

    # SQLite first: it is bound by this process's CPU, so it goes before the writer processes
    for rate in sqlite_b1000(4 * scale, 20_000, reps):
        rates.add("sqlite_earn_per_s_b1000", rate)

    url = fresh_pg(args.pg_url)
    engine = make_engine(url, pool_size=2)
    customers = [f"c{i}" for i in range(20_000)]
    keys = Keys("k-")
    log("creating 20,000 customers")
    create_customers(engine, customers, keys)
    with engine.begin() as conn:  # fresh statistics, as a running ledger would have
        conn.execute(text("ANALYZE"))
    # one warm-up batch of each size: plans, caches and connections, not measured
    for size in (1, 100, 1000):
        run_batches(engine, earnings(keys, customers, size, rng), size)

    for _ in range(reps):
        for size, count in ((1, 50 * scale), (100, 1_000 * scale)):
            rates.add(f"pg_earn_per_s_b{size}",
                      run_batches(engine, earnings(keys, customers, count, rng), size))
        # b1000: ledger and raw batches interleaved, so both see the same machine load
        ledger_rate, raw_rate = ledger_vs_raw(engine, customers, keys, 5 * scale, rng)
        rates.add("pg_earn_per_s_b1000", ledger_rate)
        rates.add("pg_raw_per_s_b1000", raw_rate)
        rates.add("ratio_earn_to_raw_b1000", ledger_rate / raw_rate)

    engine.dispose()  # no pooled connection crosses the fork into the writers
    deadlocks = 0
    for _ in range(reps):
        uniform, d1 = two_writers(url, customers, 2 * scale, 0.0, 50, "u")
        skewed, d2 = two_writers(url, customers, 2 * scale, 0.8, 50, "h")
        plain, d3 = two_writers(url, customers, 2 * scale, 0.0, 0, "t")
        deadlocks += d1 + d2 + d3
        rates.add("pg_hot_account_ratio", skewed / uniform)
        rates.add("pg_two_writers_per_s", plain)

    engine = make_engine(url, pool_size=1)
    results: dict[str, Any] = {}
    for name in rates.runs:
        value = rates.median(name)
        results[name] = round(value, 3) if value < 10 else round(value)
    results["deadlocks"] = deadlocks
    results["verify_entries_per_s"] = round(measure_verify(engine))
    results["bytes_per_entry"] = bytes_per_entry(engine)
    engine.dispose()

    results["floors_ok"] = (
        all(results[k] >= v for k, v in FLOORS.items()) and results["deadlocks"] == 0
    )
    results["reps"] = reps
    results["spread"] = rates.spread()
    results["cpus"] = os.cpu_count()
    results["load_avg_before"] = load_before
    results["load_avg_after"] = load_avg()
    results["load_avg_1m_before"] = load_before[0]
    results["load_avg_1m_after"] = results["load_avg_after"][0]
    results["quick"] = bool(args.quick)
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
