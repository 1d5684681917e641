"""The demo's partner-exchange phase: member links, swaps to all three partners, referrals.

Runs against the partner worker (`python -m streams.partner_worker`) and the partner simulator
(`python -m adapters.simulator --partner all`), which `demo` starts in the background with the
same development signing keys (kept in data/demo/partner-keys.env, never in the repository).
"""

from __future__ import annotations

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

from points.exchange import settlement
from points.exchange.service import ExchangeService, SwapOrder, SwapRefused
from points.exchange.tables import partner_links, referrals, swaps
from points.ledger.tables import accounts, balances
from points.partners import PartnersConfig
from points.settings import TopicNames

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
        service.join_partner(customer, partner, f"M{customer[-7:]}", member_name="Demo Member")
    like = f"{prefix}%"
    invite_friends(service, [c for c, _, _ in plan[:invites]], prefix, publish, topics)

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
        waiting = by_status.get("signed_up", 0) + by_status.get("qualified", 0)
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
