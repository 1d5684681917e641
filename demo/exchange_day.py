"""The demo's partner-exchange phase: member links, swaps to all three partners, referrals.

Runs against the partner worker (`python -m streams.partner_worker`) and the partner simulator
(`python -m adapters.simulator --partner all`), which `demo` starts in the background with the
same development signing keys (kept in data/demo/partner-keys.env, never in the repository).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine, func, select

from points.exchange import ExchangeService, SwapOrder, SwapRefused, settlement
from points.exchange.tables import partner_links, referrals, swaps
from points.ledger.tables import accounts, balances
from points.partners import PartnersConfig
from points.settings import KafkaSettings, TopicNames
from points.signing import SigningKey, sign
from streams import kafka_clients

__all__ = ["ExchangeDay", "partner_env", "run_exchange_day"]

PARTNERS = ("ridehail", "eshop", "airline")
KEY_VARIABLES = (
    "POINTS_PARTNER_KEY_RIDEHAIL",
    "POINTS_PARTNER_KEY_ESHOP",
    "POINTS_PARTNER_KEY_AIRLINE",
)


def partner_env(data_dir: Path) -> dict[str, str]:
    """Development signing keys and referral secret, made once per data folder."""
    path = data_dir / "demo" / "partner-keys.env"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        names = (*KEY_VARIABLES, "POINTS_REFERRAL_SECRET")
        path.write_text("".join(f"{n}={secrets.token_hex(32)}\n" for n in names))
        path.chmod(0o600)
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


@dataclass
class ExchangeDay:
    links: Counter[str] = field(default_factory=Counter)
    swaps: dict[str, Counter[str]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    referrals: Counter[str] = field(default_factory=Counter)
    statements: list[settlement.Statement] = field(default_factory=list)


def invite_friends(
    service: ExchangeService,
    referrers: list[str],
    prefix: str,
    publish: Callable[[str, list[tuple[bytes, bytes]]], None],
    topics: TopicNames | None = None,
) -> None:
    """Customers bring customers: each referrer's friend opens an account with the referrer's
    code and makes a first purchase, which qualifies the referral (both sides rewarded)."""
    if topics is None or not referrers:
        return
    now = datetime.now(UTC)
    onboardings, purchases = [], []
    for i, referrer in enumerate(referrers):
        friend = f"{prefix}-friend{i:05d}"
        onboardings.append(
            (
                friend.encode(),
                _json(
                    {
                        "event_type": "customer_onboarded",
                        "event_id": f"{friend}-onboard",
                        "customer_id": friend,
                        "occurred_at": now.isoformat(),
                        "joined_at": now.isoformat(),
                        "segment": "young",
                        "birth_year": 2001,
                        "referral_code": service.referral_code(referrer),
                    }
                ),
            )
        )
        purchases.append(
            (
                friend.encode(),
                _json(
                    {
                        "event_type": "purchase",
                        "event_id": f"{friend}-first",
                        "customer_id": friend,
                        "amount_minor": 12_800,
                        "currency": "CNY",
                        "mcc": "5812",
                        "merchant_id": "M-00042",
                        "channel": "mobile",
                        "occurred_at": (now + timedelta(seconds=5)).isoformat(),
                    }
                ),
            )
        )
    publish(topics.bank_customers, onboardings)
    time.sleep(3)  # onboarding first: the referral must exist before the qualifying purchase
    publish(topics.bank_transactions, purchases)


def partner_member_signups(
    service: ExchangeService,
    partners: PartnersConfig,
    env: dict[str, str],
    kafka: KafkaSettings,
    prefix: str,
    publish: Callable[[str, list[tuple[bytes, bytes]]], None],
    topics: TopicNames,
    per_partner: int = 20,
) -> None:
    """Partner-originated referrals: each partner reports members who opened a bank account with
    its referral offer (a signed ``referral_signup`` on its events topic, exactly as a partner
    would send it); the new customers then onboard and make a first qualifying purchase."""
    now = datetime.now(UTC)
    onboardings, purchases = [], []
    for partner_id in PARTNERS:
        config = partners.get(partner_id)
        ref = config.signing_keys[0]
        key = SigningKey(ref.key_id, partner_id, bytes.fromhex(env[ref.env]))
        code = service.partner_referral_code(partner_id)
        signed: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        for i in range(per_partner):
            customer = f"{prefix}-pm-{partner_id}-{i:03d}"
            body = _json(
                {
                    "event_type": "referral_signup",
                    "event_id": f"{customer}-signup",
                    "customer_id": customer,
                    "partner_id": partner_id,
                    "occurred_at": now.isoformat(),
                    "referral_code": code,
                    "partner_member_id": f"PM{prefix}{i:05d}",
                }
            )
            signed.append((customer.encode(), body, list(sign(body, key, now))))
            onboardings.append(
                (
                    customer.encode(),
                    _json(
                        {
                            "event_type": "customer_onboarded",
                            "event_id": f"{customer}-onboard",
                            "customer_id": customer,
                            "occurred_at": now.isoformat(),
                            "joined_at": now.isoformat(),
                            "segment": "young",
                            "birth_year": 1999,
                        }
                    ),
                )
            )
            purchases.append(
                (
                    customer.encode(),
                    _json(
                        {
                            "event_type": "purchase",
                            "event_id": f"{customer}-first",
                            "customer_id": customer,
                            "amount_minor": 8_800,
                            "currency": "CNY",
                            "mcc": "5411",
                            "merchant_id": "M-00007",
                            "channel": "card_present",
                            "occurred_at": (now + timedelta(seconds=5)).isoformat(),
                        }
                    ),
                )
            )
        asyncio.run(_send_signed(kafka, topics.partner_events(partner_id), signed))
    publish(topics.bank_customers, onboardings)
    time.sleep(3)  # the sign-up must be recorded before the qualifying purchase
    publish(topics.bank_transactions, purchases)


async def _send_signed(
    kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = kafka_clients.producer(kafka)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def _json(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _richest(engine: Engine, prefix: str, count: int) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(accounts.c.owner, balances.c.balance)
            .select_from(balances.join(accounts, accounts.c.id == balances.c.account_id))
            .where(
                accounts.c.kind == "wallet",
                accounts.c.program == "bank",
                accounts.c.owner.like(f"{prefix}%"),
                balances.c.balance >= 2000,
            )
            .order_by(balances.c.balance.desc())
            .limit(count)
        ).all()
    return [(str(owner), int(balance)) for owner, balance in rows]


def _wait(what: str, done: Callable[[], bool], console: Console, timeout_s: float = 120) -> bool:
    deadline = time.monotonic() + timeout_s
    with console.status(what):
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(0.5)
    console.print(f"[yellow]timed out: {what}")
    return False


def run_exchange_day(
    service: ExchangeService,
    engine: Engine,
    prefix: str,
    console: Console,
    partners: PartnersConfig,
    publish: Callable[[str, list[tuple[bytes, bytes]]], None],
    topics: TopicNames,
    *,
    swappers: int = 600,
    invites: int = 200,
    partner_signup_env: tuple[dict[str, str], KafkaSettings] | None = None,
) -> ExchangeDay:
    day = ExchangeDay()
    started = datetime.now(UTC)
    chosen = _richest(engine, prefix, swappers)
    plan = []
    for i, (customer, balance) in enumerate(chosen):
        # Round robin over the partners a customer can afford (the airline's minimum is high).
        affordable = [
            p for p in PARTNERS if partners.get(p).outbound.min_points * 2 <= balance
        ] or ["ridehail"]
        plan.append((customer, affordable[i % len(affordable)], balance))
    for customer, partner, _ in plan:
        # Joining the partner's program from the bank app: a bank-originated cross-referral
        # plus the member-link request the partner must confirm before any swap.
        # The run's prefix keeps member ids unique across demo runs on one data folder.
        service.join_partner(customer, partner, f"M{prefix}{customer[-7:]}",
                             member_name="Demo Member")
    like = f"{prefix}%"
    invite_friends(service, [c for c, _, _ in plan[:invites]], prefix, publish, topics)
    if partner_signup_env is not None:
        env, kafka = partner_signup_env
        partner_member_signups(service, partners, env, kafka, prefix, publish, topics)

    def links_settled() -> bool:
        with engine.connect() as conn:
            pending = conn.execute(
                select(func.count())
                .select_from(partner_links)
                .where(
                    partner_links.c.customer_id.like(like), partner_links.c.status == "requested"
                )
            ).scalar_one()
        return int(pending) == 0

    _wait(f"partners confirming {len(plan)} member links", links_settled, console)
    with engine.connect() as conn:
        for status, n in conn.execute(
            select(partner_links.c.status, func.count())
            .where(partner_links.c.customer_id.like(like))
            .group_by(partner_links.c.status)
        ):
            day.links[str(status)] = int(n)
    requests = []
    for customer, partner, balance in plan:
        config = partners.get(partner)
        step = config.outbound.multiple_points
        points = max(config.outbound.min_points, (balance // 4) // step * step)
        requests.append((customer, partner, min(points, config.outbound.max_points)))
    orders = []
    for request in requests:
        try:
            quote = service.quote_many([request])[0]
        except Exception as exc:  # a quote refused by the partner's rules (limits, minimum)
            day.refused[getattr(exc, "code", type(exc).__name__)] += 1
            continue
        orders.append(SwapOrder(request[0], quote.quote_id))
    results = service.open_swaps(orders)
    for result in results:
        if isinstance(result, SwapRefused):
            day.refused[result.code] += 1

    def swaps_settled() -> bool:
        with engine.connect() as conn:
            pending = conn.execute(
                select(func.count())
                .select_from(swaps)
                .where(swaps.c.customer_id.like(like), swaps.c.status.in_(("requested", "pending")))
            ).scalar_one()
        return int(pending) == 0

    _wait(f"{len(orders)} swaps round-tripping through the partners", swaps_settled, console, 180)

    def referrals_settled() -> bool:
        with engine.connect() as conn:
            by_status = dict(
                conn.execute(
                    select(referrals.c.status, func.count())
                    .where(referrals.c.referee_id.like(f"{prefix}-friend%"))
                    .group_by(referrals.c.status)
                )
                .tuples()
                .all()
            )
            by_status_pm = dict(
                conn.execute(
                    select(referrals.c.status, func.count())
                    .where(referrals.c.referee_id.like(f"{prefix}-pm-%"))
                    .group_by(referrals.c.status)
                )
                .tuples()
                .all()
            )
        waiting = sum(
            counts.get("signed_up", 0) + counts.get("qualified", 0)
            for counts in (by_status, by_status_pm)
        )
        return sum(by_status.values()) >= min(invites, len(plan)) and waiting == 0

    _wait("referrals qualifying", referrals_settled, console, 60)
    with engine.connect() as conn:
        for partner, status, n in conn.execute(
            select(swaps.c.partner_id, swaps.c.status, func.count())
            .where(swaps.c.customer_id.like(like))
            .group_by(swaps.c.partner_id, swaps.c.status)
        ):
            day.swaps.setdefault(str(partner), Counter())[str(status)] = int(n)
        for status, n in conn.execute(
            select(referrals.c.status, func.count()).group_by(referrals.c.status)
        ):
            day.referrals[str(status)] = int(n)
        end = datetime.now(UTC) + timedelta(minutes=1)
        for partner in PARTNERS:
            day.statements.append(
                settlement.settle(conn, partners.get(partner), started - timedelta(minutes=1), end)
            )
    return day
