"""The exchange as real processes: the partner worker (faust, real broker, real PostgreSQL)
and the simulated partner, crashed and restarted mid-saga. Never a half-finished swap."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select

from adapters.config import DEFAULT_CONFIG_PATH, load_partners_config, resolve_keys
from adapters.registry import build_registry
from points.db import make_engine
from points.dead_letters import dead_letters
from points.exchange import ExchangeService
from points.exchange.tables import swap_replies, swaps
from points.ledger import (
    AccountRef,
    Earn,
    account_balance,
    apply_batch,
    customer_balance,
    customer_holds,
    verify,
)
from points.migrate import upgrade
from points.signing import sign
from tests.integration.exchange.processes import (
    ExchangeEnv,
    Process,
    new_exchange_env,
    partner_worker,
    simulator,
)
from tests.integration.exchange.support import event
from tests.integration.streams.support import wait_until

pytestmark = pytest.mark.integration

FUNDS = 3000


@pytest.fixture
def xenv(kafka_bootstrap: str, fresh_pg_url: str) -> ExchangeEnv:
    upgrade(fresh_pg_url)
    return new_exchange_env(kafka_bootstrap, fresh_pg_url)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in started:
        p.stop()


def service_for(env: ExchangeEnv, engine: Engine, config_path: Path | None = None) -> (
    ExchangeService
):
    config = load_partners_config(config_path or DEFAULT_CONFIG_PATH)
    registry = build_registry(config, resolve_keys(config, env.keys_env), env.topics)
    return ExchangeService(engine, registry, env.stream.settings().kafka.topics,
                           referral_secret=bytes.fromhex("72" * 32), zone=config.zone)


def fund(engine: Engine, customers: list[str]) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        apply_batch(conn, [Earn(f"fund:{c}", c, FUNDS, now + timedelta(days=365))
                           for c in customers], now=now)


def statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {str(a): str(b) for a, b in conn.execute(select(swaps.c.swap_id, swaps.c.status))}


def assert_every_swap_finished_consistently(engine: Engine, partner: str) -> dict[str, int]:
    """Each swap is final, and its ledger agrees: completed <-> hold posted, rejected/expired
    <-> hold voided; the clearing account holds exactly the completed points; verify is clean."""
    by_status: dict[str, int] = {}
    completed_points: dict[str, int] = {}
    with engine.connect() as conn:
        rows = conn.execute(select(swaps)).mappings().all()
        for row in rows:
            status = row["status"]
            by_status[status] = by_status.get(status, 0) + 1
            assert status in ("completed", "rejected", "expired"), row
            holds = {h.hold_key: h for h in customer_holds(conn, row["customer_id"],
                                                           pending_only=False)}
            hold = holds.get(f"swap:{row['swap_id']}:hold")
            if status == "completed":
                assert hold is not None and hold.status == "posted", (row, hold)
                completed_points[row["customer_id"]] = (
                    completed_points.get(row["customer_id"], 0) + int(row["points"]))
            elif hold is not None:
                assert hold.status == "voided", (row, hold)
        assert account_balance(conn, AccountRef.clearing("bank", partner)) == sum(
            completed_points.values())
        for customer in {r["customer_id"] for r in rows}:
            b = customer_balance(conn, customer, now=datetime.now(UTC))
            assert (b.available, b.held) == (FUNDS - completed_points.get(customer, 0), 0)
        report = verify(conn)
    assert report.ok, report.violations
    return by_status


def test_saga_survives_worker_and_partner_crashes_with_rejections_and_duplicates(
    xenv: ExchangeEnv, processes: list[Process], tmp_path: Path
) -> None:
    """40 linked customers swap to ridehail through the real broker while the simulated
    partner rejects 20 % and sends 30 % of replies twice; the worker is SIGKILLed between holds
    and replies (twice) and the partner is SIGKILLed and restarted with requests waiting.
    In the end every swap is completed or rejected, its hold posted or voided accordingly,
    wallets and the clearing account match the completed swaps, and verify is clean."""
    engine = make_engine(xenv.stream.database_url)
    service = service_for(xenv, engine)
    customers = [f"c{i:02d}" for i in range(40)]
    fund(engine, customers)
    sim_args = ["--partner", "ridehail", "--reject-rate", "0.2", "--duplicate-rate", "0.3",
                "--seed", "7"]
    sim = simulator(xenv, tmp_path / "sim.log", *sim_args).start()
    worker = partner_worker(xenv, tmp_path / "worker.log").start()
    processes.extend([sim, worker])

    def log() -> str:
        return worker.log_tail() + "\n--- simulator\n" + sim.log_tail(20)

    for c in customers:
        service.request_link(c, "ridehail", f"R-{c}")
    # the airline-style 20 % rejection also applies to links: retry until linked
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        links = {c: service.link(c, "ridehail") for c in customers}
        pending = [c for c, v in links.items() if v is None or v.status == "requested"]
        for c, v in links.items():
            if v is not None and v.status == "rejected":
                service.request_link(c, "ridehail", f"R2-{c}")
        if not pending and all(v is not None and v.status == "linked" for v in links.values()):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("links never completed\n" + log())

    rng = random.Random(3)
    first = customers[:20]
    quotes = service.quote_many([(c, "ridehail", 400) for c in first])
    from points.exchange import SwapOrder

    service.open_swaps([SwapOrder(c, q.quote_id) for c, q in zip(first, quotes, strict=True)])
    time.sleep(rng.uniform(0.2, 1.0))
    worker.kill()  # holds placed, replies possibly in flight or half applied
    worker = partner_worker(xenv, tmp_path / "worker.log").start()
    processes.append(worker)

    sim.kill()  # the partner crashes; new requests wait in its topic
    second = customers[20:]
    quotes = service.quote_many([(c, "ridehail", 800) for c in second])
    service.open_swaps([SwapOrder(c, q.quote_id) for c, q in zip(second, quotes, strict=True)])
    time.sleep(2.0)
    sim = simulator(xenv, tmp_path / "sim.log", *sim_args).start()
    processes.append(sim)
    time.sleep(rng.uniform(0.5, 1.5))
    worker.kill()
    worker = partner_worker(xenv, tmp_path / "worker.log").start()
    processes.append(worker)

    wait_until(lambda: len(statuses(engine)) == 40 and all(
        s in ("completed", "rejected", "expired") for s in statuses(engine).values()),
        150, "every swap final", log)
    by_status = assert_every_swap_finished_consistently(engine, "ridehail")
    assert by_status.get("completed", 0) > 0 and by_status.get("rejected", 0) > 0, by_status
    with engine.connect() as conn:
        applied = conn.execute(
            select(swap_replies.c.swap_id).where(swap_replies.c.outcome == "applied")).all()
    assert len(applied) == len({a for (a,) in applied}) == 40  # each swap resolved once
    engine.dispose()


def test_deadline_timer_in_the_worker_expires_unanswered_swaps_and_late_replies_change_nothing(
    xenv: ExchangeEnv, processes: list[Process], tmp_path: Path
) -> None:
    """With a 3 s confirmation deadline and the partner down, the worker's timer expires the
    swap (points back, swap_cancelled relayed); the partner, restarted, confirms the original
    request late: recorded as late_confirmation, nothing moves; verify is clean."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["partners"]["ridehail"]["confirmation_deadline_s"] = 3
    config_path = tmp_path / "partners.yaml"
    config_path.write_text(yaml.safe_dump(data))
    xenv.stream.extra_env["POINTS_PARTNERS_CONFIG"] = str(config_path)
    engine = make_engine(xenv.stream.database_url)
    service = service_for(xenv, engine, config_path)
    fund(engine, ["c1"])
    sim_args = ["--partner", "ridehail", "--reject-rate", "0", "--config", str(config_path)]
    sim = simulator(xenv, tmp_path / "sim.log", *sim_args).start()
    worker = partner_worker(xenv, tmp_path / "worker.log").start()
    processes.extend([sim, worker])
    service.request_link("c1", "ridehail", "R-1")
    wait_until(lambda: getattr(service.link("c1", "ridehail"), "status", "") == "linked", 90,
               "link", worker.log_tail)
    sim.stop()
    view = service.request_swap("c1", service.quote("c1", "ridehail", 400).quote_id)
    wait_until(lambda: statuses(engine).get(view.swap_id) == "expired", 60, "expiry",
               worker.log_tail)
    assert service.swap_status("c1", view.swap_id).reason == "deadline_passed"  # type: ignore[union-attr]
    sim = simulator(xenv, tmp_path / "sim.log", *sim_args).start()
    processes.append(sim)

    def late_seen() -> bool:
        with engine.connect() as conn:
            return conn.execute(select(swap_replies.c.reason).where(
                swap_replies.c.reason == "late_confirmation")).first() is not None

    wait_until(late_seen, 60, "late confirmation", lambda: sim.log_tail() + worker.log_tail())
    assert "swap_cancelled" in sim.log_tail(200)
    assert_every_swap_finished_consistently(engine, "ridehail")
    engine.dispose()


def test_unsigned_forged_and_wrong_topic_messages_reach_the_dlq_through_the_worker(
    xenv: ExchangeEnv, processes: list[Process], tmp_path: Path
) -> None:
    """On the real broker: an unsigned inbound swap, one signed with eshop's key on ridehail's
    topic and a stale one are dead-lettered with their verdicts; a valid one credits 300."""
    engine = make_engine(xenv.stream.database_url)
    worker = partner_worker(xenv, tmp_path / "worker.log").start()
    processes.append(worker)
    config = load_partners_config()
    keys = resolve_keys(config, xenv.keys_env)
    ridehail_key = keys.get("ridehail-2026-01")
    eshop_key = keys.get("eshop-2026-01")
    assert ridehail_key is not None and eshop_key is not None
    now = datetime.now(UTC)

    def body(ref: str) -> bytes:
        import json

        return json.dumps(event("inbound_swap", "c1", "ridehail", f"ev-{ref}", now,
                                swap_id=f"s-{ref}", partner_reference=ref,
                                partner_points=100)).encode()

    topic = xenv.topics.events("ridehail")
    records = [
        (b"c1", body("A"), []),
        (b"c1", body("B"), list(sign(body("B"), eshop_key, now))),
        (b"c1", body("C"), list(sign(body("C"), ridehail_key, now - timedelta(seconds=900)))),
        (b"c1", body("D"), list(sign(body("D"), ridehail_key, now))),
    ]
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=xenv.stream.bootstrap, acks="all")
        await producer.start()
        try:
            for key, value, headers in records:
                await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(send())

    def dead() -> list[str]:
        with engine.connect() as conn:
            return sorted(str(r) for (r,) in conn.execute(select(dead_letters.c.reason_code)))

    wait_until(lambda: len(dead()) == 3, 90, "3 dead letters", worker.log_tail)
    assert dead() == ["stale", "unsigned", "wrong_topic"]

    def credited() -> int:
        with engine.connect() as conn:
            return customer_balance(conn, "c1", now=datetime.now(UTC)).available

    wait_until(lambda: credited() == 300, 30, "the valid credit", worker.log_tail)
    with engine.connect() as conn:
        assert verify(conn).ok
    engine.dispose()
