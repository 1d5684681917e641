"""A short day at the bank: publish card transactions, watch the worker record them.

Uses the embedded SQLite ledger unless POINTS_DATABASE__URL names a PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from points.db import make_engine
from points.intake import dead_letters, inbound_events
from points.migrate import upgrade
from points.settings import Settings, load_settings
from streams.topics import ensure_topics_sync

ROOT = Path(__file__).resolve().parent.parent
console = Console()

MCC_MIX = [("5411", 40), ("5812", 20), ("5541", 10), ("4121", 10), ("5311", 15), ("4511", 5)]


def sample_transactions(run_id: str, customers: int, count: int) -> list[dict[str, object]]:
    rng = random.Random(run_id)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8)
    mccs = [mcc for mcc, weight in MCC_MIX for _ in range(weight)]
    return [
        {
            "event_type": "purchase",
            "event_id": f"demo-{run_id}-{i}",
            "customer_id": f"cust-{rng.randrange(customers):05d}",
            "amount_minor": rng.choice([8_00, 25_50, 68_00, 129_90, 450_00, 1_280_00]),
            "currency": "CNY",
            "mcc": rng.choice(mccs),
            "merchant_id": f"m-{rng.randrange(200):04d}",
            "channel": rng.choice(["card_present", "online", "mobile"]),
            "occurred_at": (start + timedelta(seconds=i * 7)).isoformat(),
        }
        for i in range(count)
    ]


def malformed(run_id: str) -> list[tuple[bytes, bytes]]:
    good = sample_transactions(run_id + "-bad", 1, 3)
    return [
        (b"cust-00000", b"{not json"),
        (b"cust-00000", json.dumps({**good[0], "amount_minor": 12.5}).encode()),
        (b"someone-else", json.dumps(good[1]).encode()),
    ]


async def publish(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        topic = settings.kafka.topics.bank_transactions
        futures = [await producer.send(topic, key=k, value=v) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def landed(settings: Settings, run_id: str) -> tuple[int, int]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                select(func.count())
                .select_from(inbound_events)
                .where(inbound_events.c.event_id.like(f"demo-{run_id}-%"))
            ).scalar_one()
            dead = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
        return int(stored), int(dead)
    finally:
        engine.dispose()


def summary(settings: Settings, run_id: str) -> None:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(inbound_events.c.customer_id, func.count(), inbound_events.c.event_type)
                .where(inbound_events.c.event_id.like(f"demo-{run_id}-%"))
                .group_by(inbound_events.c.customer_id, inbound_events.c.event_type)
                .order_by(func.count().desc())
                .limit(10)
            ).all()
            reasons = conn.execute(
                select(dead_letters.c.reason_code, func.count()).group_by(
                    dead_letters.c.reason_code
                )
            ).all()
    finally:
        engine.dispose()
    table = Table(title="Busiest customers in this run")
    table.add_column("customer")
    table.add_column("type")
    table.add_column("events", justify="right")
    for customer, count, event_type in rows:
        table.add_row(customer, event_type, str(count))
    console.print(table)
    dlq = Table(title="Dead letters (all runs), by reason")
    dlq.add_column("reason")
    dlq.add_column("count", justify="right")
    for code, count in reasons:
        dlq.add_row(code, str(count))
    console.print(dlq)


def main() -> int:
    settings = load_settings()
    run_id = uuid.uuid4().hex[:8]
    console.rule("[bold]Points exchange demo")
    console.print(f"ledger: {settings.database_url}")
    console.print(f"kafka:  {settings.kafka.bootstrap_servers}")
    upgrade(settings.database_url)
    ensure_topics_sync(settings)

    log_path = settings.data_dir / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "POINTS_DATABASE__URL": settings.database_url}
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.worker"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        transactions = sample_transactions(run_id, customers=50, count=500)
        resent = transactions[:25]  # producers retry: these arrive twice
        records = [
            (t["customer_id"].encode(), json.dumps(t).encode()) for t in transactions + resent
        ]  # type: ignore[union-attr]
        records += malformed(run_id)
        _, dead_before = landed(settings, run_id)
        with console.status(f"publishing {len(records)} messages (25 duplicates, 3 malformed)"):
            asyncio.run(publish(settings, records))
        deadline = time.monotonic() + 120
        with console.status("waiting for the worker to record them") as status:
            while time.monotonic() < deadline:
                stored, dead = landed(settings, run_id)
                status.update(
                    f"stored {stored}/{len(transactions)}, dead letters +{dead - dead_before}"
                )
                if stored == len(transactions) and dead - dead_before == 3:
                    break
                if worker.poll() is not None:
                    console.print(f"[red]worker exited ({worker.returncode}); see {log_path}")
                    return 1
                time.sleep(0.5)
            else:
                console.print(f"[red]timed out; see {log_path}")
                return 1
        console.print(
            f"[green]stored {stored} distinct transactions exactly once; "
            f"{dead - dead_before} malformed messages went to {settings.kafka.topics.points_dlq}"
        )
        summary(settings, run_id)
        return 0
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    raise SystemExit(main())
