"""Customer API benchmark: balance and activity under 50 concurrent connections.

Run: ``python -m benchmarks.bench_api [--pg-url URL] [--workers N] [--compare-workers]``
(URL defaults to POINTS_BENCH_PG_URL). Everything lives in the schema ``bench_api`` of that
database (dropped and recreated each run). Steps:

1. seed 100,000 customers through ``points.ledger.apply_batch`` in batches of 10,000:
   two earnings each (one lot expiring in 20 days, one in 200), and a pending hold for
   every tenth customer;
2. start ``python -m points.api`` (uvicorn, ``--workers`` processes, RS256 tokens checked
   against a freshly generated key) in a separate process on 127.0.0.1;
3. drive it with ``wrk`` (C, one thread, 50 connections, keep-alive) from another process,
   each request signed as one of 20,000 random customers: ``GET /v1/me/balance`` and
   ``GET /v1/me/activity``. wrk is installed with apt-get when missing (or the run says so).

4. swaps (after the reads): the customers behind the tokens get a ``linked`` ridehail
   membership seeded straight into ``partner_links``; ``benchmarks.swap_load``, a process of
   its own, opens 50 keep-alive HTTP/1.1 connections, each taking the next unused customer
   and doing ``POST /v1/me/swaps/quote`` (400 points) then ``POST /v1/me/swaps`` with its
   quote id, each POST with a fresh Idempotency-Key. One swap request = that pair, from quote
   sent to swap answered (202, points held, outbox row). Before it, the same generator sends
   pairs of ``GET /health`` for 2 s (the raw limit of generator + server) and 1 s of swaps to
   warm up. Over the measured run the CPU of the API process, of this stack's PostgreSQL
   (server and backends) and of the generator are read from /proc and reported per pair.
   ``--profile-swaps FILE`` records the API with py-spy meanwhile (collapsed stacks).

The activity run reports the CPU the API and PostgreSQL spent per request the same way
(``activity_api_cpu_us_per_request``, ``activity_postgres_cpu_us_per_request``);
``--profile-activity FILE`` records the API with py-spy during it.

The API, PostgreSQL and the load generators share the machine's cores (2 here); the JSON
records the load average before and after. The last line printed is one JSON object:
``balance_rps``, ``balance_p99_ms``, ``activity_rps``, ``activity_p99_ms``,
``swap_request_rps`` (quote+request pairs per second), ``swap_request_p99_ms``,
``swap_errors``, ``swap_api_cpu_us_per_pair``, ``swap_postgres_cpu_us_per_pair``,
``swap_load_generator_cpu_us_per_pair``, the raw limits ``health_rps`` and
``swap_raw_pairs_rps``, and ``floors_ok`` (balance_rps >= 1,500 and balance_p99_ms <= 50;
the swap figure has no floor yet).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine, text

from benchmarks import profiling
from benchmarks.bench_pipeline import postgres_pids, process_cpu_s, with_descendants
from points.db import make_engine
from points.earning.tables import earning_records
from points.exchange.tables import partner_links
from points.ledger import Earn, Hold, Operation, Reason, Spend, apply_batch
from points.migrate import upgrade

SCHEMA = "bench_api"
ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = 100_000
BATCH = 10_000
TOKENS = 20_000
CONNECTIONS = 50
SWAP_WARMUP = 300
"""Customers whose swaps warm the API up before the measured swap run (not counted)."""
ACTIVE_CUSTOMERS = 2_000
"""Customers with a long history (50-500 entries each) whose activity the bench reads."""
FLOORS = {"balance_rps": 1_500, "balance_p99_ms": 50}
AUDIENCE = "points-api"
ISSUER = "https://auth.bank.example"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def schema_url(pg_url: str) -> str:
    separator = "&" if "?" in pg_url else "?"
    return f"{pg_url}{separator}options={quote(f'-csearch_path={SCHEMA}')}"


def customer_id(i: int) -> str:
    return f"cust-{i:06d}"


def seed(pg_url: str, customers: int) -> str:
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    engine.dispose()
    url = schema_url(pg_url)
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    ops: list[Operation] = []
    for i in range(customers):
        c = customer_id(i)
        reason = Reason(rule_ids=("base-everyday",), ruleset_version="2026.11-1",
                        source_event=f"tx-{i}")
        ops.append(Earn(f"seed:{i}:a", c, 100 + i % 500, now + timedelta(days=20),
                        reason=reason))
        ops.append(Earn(f"seed:{i}:b", c, 1_000 + i % 700, now + timedelta(days=200),
                        reason=reason))
        if i % 10 == 0:
            ops.append(Hold(f"seed:{i}:h", c, 50, now + timedelta(days=1),
                            to_partner="ridehail"))
    start = time.perf_counter()
    for offset in range(0, len(ops), BATCH):
        with engine.begin() as conn:
            apply_batch(conn, ops[offset:offset + BATCH], now=now)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    log(f"seeded {customers} customers ({len(ops)} operations) "
        f"in {time.perf_counter() - start:.1f} s")
    return url


def active_customer_id(i: int) -> str:
    return f"active-{i:05d}"


def entries_of(i: int) -> int:
    """50 to 500 entries, spread evenly over the active customers."""
    return 50 + (i * 37) % 451


def seed_active(url: str, customers: int) -> None:
    """Customers with 50-500 entries each, their entries interleaved with everyone else's
    (one round adds the next entry of every customer that still has one), as a year of
    purchases would leave them: purchases with an earning record (the explanation join),
    app earnings explained from the rules, and a small spend every 15th line."""
    engine = make_engine(url)
    now = datetime.now(UTC)
    ops: list[Operation] = []
    records: list[dict[str, Any]] = []
    for n in range(max((entries_of(i) for i in range(customers)), default=0)):
        for i in range(customers):
            if n >= entries_of(i):
                continue
            c = active_customer_id(i)
            event = f"atx-{i}-{n}"
            if n % 15 == 14:
                ops.append(Spend(f"aseed:{i}:{n}", c, 1 + n % 7,
                                 reason=Reason(note="bench spend")))
                continue
            points = 10 + (i + n) % 90
            ops.append(Earn(f"aseed:{i}:{n}", c, points, now + timedelta(days=200 + n % 100),
                            reason=Reason(rule_ids=("base-everyday",),
                                          ruleset_version="2026.11-1", source_event=event)))
            if n % 3 != 2:  # two purchases in three have a record; the rest are app earnings
                records.append({"event_id": event, "customer_id": c, "record": {
                    "event_id": event, "customer_id": c, "ruleset_version": "2026.11-1",
                    "amount_minor": points * 100, "currency": "EUR", "partner_id": None,
                    "lines": [{"rule_id": "base-everyday", "kind": "base", "points": points,
                               "explanation": "1 point per 100 minor units",
                               "clawback": True}],
                    "refunded_minor": 0, "clawed": {}}, "updated_at": now})
    start = time.perf_counter()
    for offset in range(0, len(ops), BATCH):
        with engine.begin() as conn:
            apply_batch(conn, ops[offset:offset + BATCH], now=now)
    for offset in range(0, len(records), BATCH):
        with engine.begin() as conn:
            conn.execute(earning_records.insert(), records[offset:offset + BATCH])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    log(f"seeded {customers} active customers ({len(ops)} entries, {len(records)} records) "
        f"in {time.perf_counter() - start:.1f} s")


def activity_cursors(url: str, customers: int) -> dict[str, str]:
    """For each active customer, a cursor into the middle of their history (the cursor a
    customer gets after paging halfway down): ``e:<entry id>`` as the API encodes it."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT owner, entry_id FROM (
              SELECT a.owner, l.entry_id,
                     row_number() OVER (PARTITION BY a.owner ORDER BY l.entry_id DESC) AS n,
                     count(*) OVER (PARTITION BY a.owner) AS total
              FROM ledger_legs l
              JOIN ledger_accounts a ON a.id = l.credit_account_id OR a.id = l.debit_account_id
              WHERE a.kind = 'wallet' AND a.owner LIKE 'active-%'
            ) x WHERE n = total / 2
        """)).all()
    engine.dispose()
    return {str(owner): base64.urlsafe_b64encode(f"e:{int(entry)}".encode()).decode()
            .rstrip("=") for owner, entry in rows}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is missing: installing it with apt-get")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return shutil.which("wrk")


def start_api(url: str, port: int, workers: int, public_key: Path) -> subprocess.Popen[bytes]:
    from adapters.config import load_partners_config

    # The exchange routes sign partner requests into the outbox: throwaway keys will do.
    keys = {p.signing_keys[0].env: os.urandom(32).hex()
            for p in load_partners_config().partners.values()}
    env = {
        **os.environ,
        **keys,
        "POINTS_DATABASE__URL": url,
        "POINTS_API__HOST": "127.0.0.1",
        "POINTS_API__PORT": str(port),
        "POINTS_API__WORKERS": str(workers),
        "POINTS_API__POOL_SIZE": "10",
        "POINTS_API__JWT__ALGORITHMS": '["RS256"]',
        "POINTS_API__JWT__PUBLIC_KEY_FILE": str(public_key),
        "POINTS_REFERRAL_SECRET": os.urandom(32).hex(),  # hex, as the workers read it
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "points.api"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the API exited: {process.stderr.read().decode()[-2000:]}"
                             if process.stderr else "the API exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit("the API did not become ready within 60 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


LUA = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
math.randomseed(%(seed)d)
request = function()
  local t = tokens[math.random(#tokens)]
  return wrk.format("GET", "%(path)s", {["Authorization"] = "Bearer " .. t})
end
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "non2xx": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


# Activity: every other request is a cursor page (halfway down the customer's history).
ACTIVITY_LUA = """
local tokens, cursors = {}, {}
for line in io.lines("%(tokens)s") do
  local t, c = line:match("^(%%S+) (%%S+)$")
  tokens[#tokens + 1] = t
  cursors[#cursors + 1] = c
end
math.randomseed(%(seed)d)
local n = 0
request = function()
  local i = math.random(#tokens)
  local path = "%(path)s"
  n = n + 1
  if n %% 2 == 0 then path = path .. "?cursor=" .. cursors[i] end
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. tokens[i]})
end
""" + LUA[LUA.index("done = function"):]


def run_wrk(wrk: str, port: int, path: str, tokens: Path, seconds: int, workdir: Path,
            lua: str = LUA) -> dict[str, Any]:
    script = workdir / f"load{path.replace('/', '_')}.lua"
    script.write_text(lua % {"tokens": tokens, "seed": 7, "path": path})
    out = subprocess.run(
        [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script),
         f"http://127.0.0.1:{port}{path}"],
        check=True, capture_output=True, text=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    raw = json.loads(line.removeprefix("WRKJSON "))
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6)),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "requests": raw["requests"],
        "non2xx": raw["non2xx"],
        "socket_errors": raw["socket_errors"],
    }


def link_customers(url: str, customers: list[str]) -> None:
    """A confirmed ridehail membership for each, straight into the table (no partner)."""
    engine = make_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(partner_links.insert(), [
            {"customer_id": c, "partner_id": "ridehail", "partner_member_id": f"R-{c}",
             "status": "linked", "request_id": f"bench:{c}", "referral_id": None,
             "reason": None, "updated_at": now}
            for c in customers])
    engine.dispose()


def run_swap_load(port: int, tokens: list[str], seconds: int, workdir: Path, *,
                  raw: bool = False) -> dict[str, Any]:
    """``benchmarks.swap_load`` in its own process (its CPU is its own, reported apart)."""
    path = workdir / ("raw-tokens.txt" if raw else "swap-tokens.txt")
    path.write_text("\n".join(tokens) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.swap_load", "--port", str(port), "--tokens",
         str(path), "--seconds", str(seconds), "--connections", str(CONNECTIONS),
         *(["--raw"] if raw else [])],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def measure_swaps(engine: Engine, api: subprocess.Popen[bytes], port: int,
                  tokens: list[str], seconds: int, workdir: Path,
                  profile: Path | None) -> dict[str, Any]:
    """The swap pairs, with the CPU the API, PostgreSQL and the generator spent on them."""
    api_pids = with_descendants([api.pid])
    pg_pids = postgres_pids(engine)
    spy = None
    if profile is not None:
        spy = profiling.record(api.pid, profile, rate=200, gil=True, seconds=seconds)
    before = (process_cpu_s(api_pids), process_cpu_s(pg_pids))
    swaps = run_swap_load(port, tokens, seconds, workdir)
    api_cpu = process_cpu_s(api_pids) - before[0]
    pg_cpu = process_cpu_s(pg_pids) - before[1]
    if spy is not None:
        spy.wait()
    per_pair = 1e6 / max(1, swaps["pairs"])
    swaps["api_cpu_us_per_pair"] = round(api_cpu * per_pair)
    swaps["postgres_cpu_us_per_pair"] = round(pg_cpu * per_pair)
    swaps["load_generator_cpu_us_per_pair"] = round(swaps["cpu_s"] * per_pair)
    return swaps


def make_tokens(workdir: Path, customers: int, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    public = workdir / "issuer.pem"
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    rng = random.Random(42)
    exp = int(time.time()) + 3600
    chosen = rng.sample(range(customers), min(TOKENS, customers))
    tokens = workdir / "tokens.txt"
    tokens.write_text("\n".join(
        jwt.encode({"sub": customer_id(i), "aud": AUDIENCE, "iss": ISSUER, "exp": exp},
                   key, algorithm="RS256")
        for i in chosen) + "\n")
    return public, tokens


def make_active_tokens(workdir: Path, cursors: dict[str, str], key: rsa.RSAPrivateKey
                       ) -> Path:
    """``token cursor`` lines, one per active customer, for the activity Lua script."""
    exp = int(time.time()) + 3600
    path = workdir / "active-tokens.txt"
    path.write_text("\n".join(
        jwt.encode({"sub": c, "aud": AUDIENCE, "iss": ISSUER, "exp": exp}, key,
                   algorithm="RS256") + " " + cursor
        for c, cursor in sorted(cursors.items())) + "\n")
    return path


def measure_activity(url: str, api: subprocess.Popen[bytes], wrk: str, port: int,
                     active_tokens: Path, seconds: int, workdir: Path,
                     profile: Path | None) -> dict[str, Any]:
    """Activity pages under wrk, with the CPU the API and PostgreSQL spent per request."""
    engine = make_engine(url)
    try:
        api_pids, pg_pids = with_descendants([api.pid]), postgres_pids(engine)
    finally:
        engine.dispose()
    spy = None
    if profile is not None:
        spy = profiling.record(api.pid, profile, rate=200, gil=True, seconds=seconds)
    before = (process_cpu_s(api_pids), process_cpu_s(pg_pids))
    activity = run_wrk(wrk, port, "/v1/me/activity", active_tokens, seconds, workdir,
                       ACTIVITY_LUA)
    per_request = 1e6 / max(1, activity["requests"])
    activity["api_cpu_us_per_request"] = round((process_cpu_s(api_pids) - before[0]) * per_request)
    activity["postgres_cpu_us_per_request"] = round(
        (process_cpu_s(pg_pids) - before[1]) * per_request)
    if spy is not None:
        spy.wait()
    return activity


def measure(url: str, workers: int, wrk: str, workdir: Path, public: Path, tokens: Path,
            seconds: int, swap_tokens: list[str], active_tokens: Path,
            profile: Path | None = None,
            activity_profile: Path | None = None) -> dict[str, Any]:
    port = free_port()
    api = start_api(url, port, workers, public)
    try:
        run_wrk(wrk, port, "/v1/me/balance", tokens, 3, workdir)  # warm-up: pools, caches
        # the raw limit of this stack: a trivial route (no token, no database)
        health = run_wrk(wrk, port, "/health", tokens, max(3, seconds // 3), workdir)
        balance = run_wrk(wrk, port, "/v1/me/balance", tokens, seconds, workdir)
        run_wrk(wrk, port, "/v1/me/activity", active_tokens, 2, workdir, ACTIVITY_LUA)
        activity = measure_activity(url, api, wrk, port, active_tokens, max(5, seconds // 2),
                                    workdir, activity_profile)
        # the generator's and the server's own ceiling: two GET /health per "pair"
        swap_raw = run_swap_load(port, swap_tokens, 2, workdir, raw=True)
        # warm-up (statements prepared, pools full) on customers the measured run leaves alone
        warmup = min(SWAP_WARMUP, len(swap_tokens) // 4)  # a small run keeps most to measure
        run_swap_load(port, swap_tokens[:warmup], 1, workdir)
        engine = make_engine(url)
        try:
            swaps = measure_swaps(engine, api, port, swap_tokens[warmup:],
                                  max(5, seconds // 2), workdir, profile)
        finally:
            engine.dispose()
        swaps["raw_pairs_rps"] = swap_raw["rps"]
        swaps["raw_load_generator_cpu_us_per_pair"] = round(
            swap_raw["cpu_s"] * 1e6 / max(1, swap_raw["pairs"]))
    finally:
        stop(api)
    log(f"workers={workers}: health {health}, balance {balance}, activity {activity}, "
        f"swaps {swaps}")
    return {"workers": workers, "health": health, "balance": balance, "activity": activity,
            "swaps": swaps}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get("POINTS_BENCH_PG_URL"))
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--active-customers", type=int, default=ACTIVE_CUSTOMERS,
                        help="customers with 50-500 entries, whose activity is read")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--compare-workers", action="store_true",
                        help="measure 1 and 2 worker processes; report the chosen --workers")
    parser.add_argument("--profile-swaps", type=Path, default=None, metavar="FILE",
                        help="py-spy the API during the measured swap run (collapsed stacks)")
    parser.add_argument("--profile-activity", type=Path, default=None, metavar="FILE",
                        help="py-spy the API during the measured activity run")
    args = parser.parse_args(argv)
    if not args.pg_url:
        raise SystemExit("set POINTS_BENCH_PG_URL or pass --pg-url")
    wrk = ensure_wrk()
    if wrk is None:
        print("wrk is missing and could not be installed (apt-get install wrk); no result")
        raise SystemExit(2)
    load_before = os.getloadavg()
    url = seed(args.pg_url, args.customers)
    seed_active(url, args.active_customers)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        workdir = Path(tmp)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public, tokens = make_tokens(workdir, args.customers, key)
        active_tokens = make_active_tokens(
            workdir, activity_cursors(url, args.active_customers), key)
        all_tokens = tokens.read_text().split()
        link_customers(url, [jwt.decode(t, options={"verify_signature": False})["sub"]
                             for t in all_tokens])
        runs = {}
        counts = sorted({1, 2, args.workers}) if args.compare_workers else [args.workers]
        for n, workers in enumerate(counts):
            # every run swaps for customers no earlier run touched (one swap per customer)
            share = all_tokens[n::len(counts)]
            runs[workers] = measure(url, workers, wrk, workdir, public, tokens, args.seconds,
                                    share, active_tokens,
                                    args.profile_swaps if workers == args.workers else None,
                                    args.profile_activity if workers == args.workers else None)
    chosen = runs[args.workers]
    result: dict[str, Any] = {
        "customers": args.customers,
        "connections": CONNECTIONS,
        "workers": args.workers,
        "balance_rps": chosen["balance"]["rps"],
        "balance_p99_ms": chosen["balance"]["p99_ms"],
        "balance_p50_ms": chosen["balance"]["p50_ms"],
        "activity_rps": chosen["activity"]["rps"],
        "activity_p99_ms": chosen["activity"]["p99_ms"],
        "activity_p50_ms": chosen["activity"]["p50_ms"],
        "activity_api_cpu_us_per_request": chosen["activity"]["api_cpu_us_per_request"],
        "activity_postgres_cpu_us_per_request":
            chosen["activity"]["postgres_cpu_us_per_request"],
        "activity_customers": args.active_customers,
        "health_rps": chosen["health"]["rps"],
        "health_p99_ms": chosen["health"]["p99_ms"],
        "errors": chosen["balance"]["non2xx"] + chosen["balance"]["socket_errors"]
        + chosen["activity"]["non2xx"] + chosen["activity"]["socket_errors"],
        "by_workers": {str(w): {"balance_rps": r["balance"]["rps"],
                                "balance_p99_ms": r["balance"]["p99_ms"],
                                "activity_p99_ms": r["activity"]["p99_ms"],
                                "swap_request_rps": r["swaps"]["rps"]}
                       for w, r in runs.items()},
        "swap_request_rps": chosen["swaps"]["rps"],
        "swap_request_p50_ms": chosen["swaps"]["p50_ms"],
        "swap_request_p99_ms": chosen["swaps"]["p99_ms"],
        "swap_request_max_ms": chosen["swaps"]["max_ms"],
        "swaps": chosen["swaps"]["pairs"],
        "swap_errors": chosen["swaps"]["errors"],
        # where the CPU of one pair went (the two cores are shared by all three)
        "swap_api_cpu_us_per_pair": chosen["swaps"]["api_cpu_us_per_pair"],
        "swap_postgres_cpu_us_per_pair": chosen["swaps"]["postgres_cpu_us_per_pair"],
        "swap_load_generator_cpu_us_per_pair":
            chosen["swaps"]["load_generator_cpu_us_per_pair"],
        # the raw limit of the same generator and server: two GET /health per pair
        "swap_raw_pairs_rps": chosen["swaps"]["raw_pairs_rps"],
        "swap_raw_load_generator_cpu_us_per_pair":
            chosen["swaps"]["raw_load_generator_cpu_us_per_pair"],
        "load_generator": "wrk -t1 -c50 (reads); benchmarks.swap_load, its own process, 50 "
                          "connections (swaps); on the same 2 cores",
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    result["floors_ok"] = (result["balance_rps"] >= FLOORS["balance_rps"]
                           and result["balance_p99_ms"] <= FLOORS["balance_p99_ms"]
                           and result["errors"] == 0)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
