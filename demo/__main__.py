"""`make demo`: a day at the bank through the whole exchange; `make demo-stop` ends it.

Starts the earning worker in the background (it stays up), publishes a simulated day of
customers, card traffic, refunds and app activity to the local broker, waits until the ledger
has applied all of it, and prints what the day produced. The ledger is the embedded SQLite
file unless POINTS_DATABASE__URL names a PostgreSQL database.

    python -m demo [--customers N] [--transactions N]
    python -m demo stop
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import Engine, func, select

from adapters.config import load_partners_config
from demo import services
from demo.campaigns import check_campaigns, demo_effects
from demo.exchange_day import partner_env, run_exchange_day
from demo.packets_day import run_packets_day
from demo.summary import collect, render, render_campaigns, render_exchange, render_packets
from demo.tokens import api_env, demo_token, exchange_day_sample_customer, ops_token
from points.api.settings import ApiSharedSettings
from points.db import make_engine
from points.dead_letters import dead_letters
from points.earning.tables import customer_profiles
from points.inbox import inbound_events
from points.ledger import verify
from points.migrate import upgrade
from points.rules import load_ruleset
from points.settings import Settings, load_settings
from simulation.traffic import DEFAULT_DAY, DayTraffic, generate_day
from streams import kafka_clients
from streams.agents.partners import build_exchange_service
from streams.topics import ensure_topics_sync

console = Console()

WORKER = services.Service("worker", ("-m", "streams.worker"), "earning worker (faust)")
PARTNER_WORKER = services.Service(
    "partner-worker", ("-m", "streams.partner_worker"), "partner exchange worker (faust)"
)
SIMULATOR = services.Service(
    "simulator", ("-m", "adapters.simulator", "--partner", "all"), "partner simulator"
)
API = services.Service("api", ("-m", "points.api"), "customer API")


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


async def publish(
    settings: Settings, topic: str, records: list[tuple[bytes, bytes]], bar: Progress, task: TaskID
) -> None:
    producer = kafka_clients.producer(settings.kafka, linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(records), 5000):
            chunk = records[start : start + 5000]
            futures = [await producer.send(topic, key=k, value=v) for k, v in chunk]
            await asyncio.gather(*futures)
            bar.advance(task, len(chunk))
    finally:
        await producer.stop()


def count(engine: Engine, query: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())  # type: ignore[call-overload]


def wait_until_applied(
    engine: Engine, prefix: str, expected: int, since: datetime, malformed: int
) -> bool:
    stored_q = (
        select(func.count())
        .select_from(inbound_events)
        .where(inbound_events.c.customer_id.like(f"{prefix}%"))
    )
    dead_q = (
        select(func.count()).select_from(dead_letters).where(dead_letters.c.created_at >= since)
    )
    with progress() as bar:
        task = bar.add_task("worker applying events", total=expected)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            stored = count(engine, stored_q)
            bar.update(task, completed=stored)
            if stored >= expected and count(engine, dead_q) >= malformed:
                return True
            if services.running(load_settings().data_dir, WORKER.name) is None:
                console.print("[red]the worker stopped; see data/demo/worker.log")
                return False
            time.sleep(0.5)
    return False


def ensure_partner_topics(settings: Settings, exchange: object) -> None:
    from adapters.topics import PartnerTopics

    names = PartnerTopics(names=settings.kafka.topics)
    extra = [
        t for p in load_partners_config().partners for t in (names.events(p), names.requests(p))
    ]
    ensure_topics_sync(settings, extra)


def run(customers: int, transactions: int) -> int:
    settings = load_settings()
    prefix = f"d{uuid.uuid4().hex[:6]}"
    since = datetime.now(UTC)
    console.rule("[bold]Points exchange — a day at the bank")
    console.print(f"ledger  {settings.database_url}\nkafka   {settings.kafka.bootstrap_servers}")
    upgrade(settings.database_url)
    ensure_topics_sync(settings)
    env = {
        **os.environ,
        "POINTS_DATABASE__URL": settings.database_url,
        **partner_env(settings.data_dir),
        **api_env(settings.data_dir),
        # The day lasts minutes: the newcomers packets bring send packets of their own too
        # (the second generation), so the demo's API waives the 7-day account age to send.
        "POINTS_GIFTS__MIN_ACCOUNT_AGE_DAYS": "0",
    }
    exchange = build_exchange_service(settings, env)
    ensure_partner_topics(settings, exchange)
    for service in (WORKER, PARTNER_WORKER, SIMULATOR, API):
        pid, started = services.start(settings.data_dir, service, env)
        state = "started" if started else "already running"
        console.print(f"{service.description:<34} pid {pid} ({state})")

    with console.status("simulating the day"):
        ruleset = load_ruleset(settings.rules.path)
        day: DayTraffic = generate_day(
            seed=int(time.time()),
            customers=customers,
            transactions=transactions,
            prefix=prefix,
            effects=demo_effects(ruleset, DEFAULT_DAY.year),
        )
    topics = settings.kafka.topics
    engine = make_engine(settings.database_url)
    try:
        with progress() as bar:
            task = bar.add_task("customer profiles", total=len(day.customers))
            asyncio.run(publish(settings, topics.bank_customers, day.customers, bar, task))
        # Profiles first: segment campaigns need them before the day's purchases arrive.
        profiles_q = (
            select(func.count())
            .select_from(customer_profiles)
            .where(customer_profiles.c.customer_id.like(f"{prefix}%"))
        )
        deadline = time.monotonic() + 300
        while count(engine, profiles_q) < len(day.customers) and time.monotonic() < deadline:
            time.sleep(0.3)
        with progress() as bar:
            t1 = bar.add_task("card transactions", total=len(day.transactions))
            t2 = bar.add_task("app check-ins and shares", total=len(day.activity))
            asyncio.run(publish(settings, topics.bank_transactions, day.transactions, bar, t1))
            asyncio.run(publish(settings, topics.customer_activity, day.activity, bar, t2))
        expected = len(day.customers) + day.distinct_valid_transactions + len(day.activity)
        started_at = time.monotonic()
        if not wait_until_applied(engine, prefix, expected, since, day.malformed):
            return 1
        elapsed = time.monotonic() - started_at
        console.print(
            f"[green]applied {expected:,} events in {elapsed:.1f} s; {day.duplicates:,} producer "
            f"duplicates ignored, {day.malformed} malformed dead-lettered"
        )
        render(console, collect(engine, prefix, since))
        render_campaigns(
            console, check_campaigns(engine, prefix, ruleset, day.true_incremental_minor)
        )
        console.rule("[bold]Partner exchange")

        def publish_now(topic: str, records: list[tuple[bytes, bytes]]) -> None:
            with progress() as bar:
                task = bar.add_task(topic, total=len(records))
                asyncio.run(publish(settings, topic, records, bar, task))

        exchange_day = run_exchange_day(
            exchange,
            engine,
            prefix,
            console,
            load_partners_config(),
            publish_now,
            topics,
            partner_signup_env=(env, settings.kafka),
        )
        render_exchange(console, exchange_day)
        console.rule("[bold]Red packets: customers bring customers")
        packets_day = run_packets_day(
            engine, prefix, console, ApiSharedSettings().url,
            lambda customer: demo_token(settings.data_dir, customer), publish_now, topics)
        render_packets(console, packets_day)
        with engine.connect() as conn:
            report = verify(conn)
        verdict = "[green]clean" if report.ok else f"[red]{len(report.violations)} violations"
        console.print(f"final verify: {verdict}[/] over {report.entries:,} entries")
        sample = exchange_day_sample_customer(engine, prefix)
    finally:
        engine.dispose()
    print_still_running(console, ApiSharedSettings().url, settings.data_dir,
                        demo_token(settings.data_dir, sample))
    return 0


def print_still_running(out: Console, api_url: str, data_dir: Path, token: str) -> None:
    """Where the running API is and a curl to try it; ``api_url`` from the same settings the
    API process reads (POINTS_API__HOST / POINTS_API__PORT), so the lines are never stale."""
    out.rule("[bold]Still running")
    out.print(f"customer API   {api_url}/docs  (OpenAPI: {api_url}/openapi.json)")
    out.print(f"dashboard      {api_url}/ops/login?token={ops_token(data_dir)}")
    out.print(f"try it         curl -s -H 'Authorization: Bearer {token}' {api_url}/v1/me/balance")
    out.print("stop it all    [bold]make demo-stop[/]")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description="A day at the bank.")
    parser.add_argument("action", nargs="?", default="run", choices=["run", "stop"])
    parser.add_argument(
        "--customers", type=int, default=int(os.environ.get("DEMO_CUSTOMERS", 20_000))
    )
    parser.add_argument(
        "--transactions", type=int, default=int(os.environ.get("DEMO_TRANSACTIONS", 60_000))
    )
    args = parser.parse_args()
    if args.action == "stop":
        stopped = services.stop_all(load_settings().data_dir)
        console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    return run(args.customers, args.transactions)


if __name__ == "__main__":
    raise SystemExit(main())
