"""The demo's red packets phase (docs/gifts.md): customers bring customers, 以客帶客.

Through the documented interfaces only, like a bank app and core banking would: long-standing
customers drop red packets from the app (``POST /v1/me/packets``), other customers open and
claim them (``GET /v1/packets/{code}``, ``POST /v1/packets/{code}/claim``), friends who are
not customers reserve a share on the packet's web page (``POST /public/packets/{code}/
reservations``) and core banking onboards them with the packet's code (``customer_onboarded``
on ``bank.customers``). Some of those newcomers send a small packet of their own, which
brings the second generation. The summary is the fission funnel by generation
(points/gifts/funnel.py), the same numbers as the dashboard's panel.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from rich.console import Console
from sqlalchemy import Engine, func, select

from points.exchange.tables import known_customers, referrals
from points.gifts.funnel import fission_funnel
from points.ledger.tables import accounts, balances
from points.settings import TopicNames

__all__ = ["PacketsDay", "run_packets_day"]

SENDERS = 30
CLAIMS_PER_PACKET = 4
LOOKERS_PER_PACKET = 2  # open the packet, never claim
SHARES = 8
TOTAL = 400
ACCOUNT_AGE_MIN = timedelta(days=8)  # the API's minimum account age to send is 7 days


@dataclass
class PacketsDay:
    funnel: dict[str, Any] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    took_s: float = 0.0


def identity(customer_id: str) -> str:
    """The identity hash core banking would send for this (simulated) person."""
    return hashlib.sha256(f"demo-person:{customer_id}".encode()).hexdigest()


def _senders(engine: Engine, prefix: str, count: int) -> list[str]:
    """Customers of the run the bank has known long enough, with points to give."""
    since = datetime.now(UTC) - ACCOUNT_AGE_MIN
    with engine.connect() as conn:
        rows = conn.execute(
            select(accounts.c.owner)
            .select_from(balances.join(accounts, accounts.c.id == balances.c.account_id)
                         .join(known_customers, known_customers.c.customer_id == accounts.c.owner))
            .where(accounts.c.kind == "wallet", accounts.c.program == "bank",
                   accounts.c.owner.like(f"{prefix}-c%"), balances.c.balance >= 2 * TOTAL,
                   known_customers.c.known_since < since)
            .order_by(accounts.c.owner).limit(count * 3)
        ).scalars().all()
    return [str(r) for r in rows[::3]][:count]  # spread out, not only the richest


def _customers(engine: Engine, prefix: str, count: int) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(known_customers.c.customer_id)
                            .where(known_customers.c.customer_id.like(f"{prefix}-c%"))
                            .order_by(known_customers.c.customer_id).limit(count)).scalars()
        return [str(r) for r in rows]


def _onboarding(customer_id: str, code: str) -> tuple[bytes, bytes]:
    now = datetime.now(UTC).isoformat()
    body = {"schema_version": 1, "event_type": "customer_onboarded",
            "event_id": f"{customer_id}-onboard", "customer_id": customer_id,
            "occurred_at": now, "joined_at": now, "segment": "young", "birth_year": 2002,
            "identity_hash": identity(customer_id), "referral_code": code}
    return customer_id.encode(), json.dumps(body, separators=(",", ":")).encode()


class _App:
    """The bank app and the packet's web page, calling the customer API."""

    def __init__(self, client: httpx.Client, token_for: Callable[[str], str],
                 day: PacketsDay) -> None:
        self.client, self.token_for, self.day = client, token_for, day

    def call(self, method: str, path: str, customer_id: str | None, body: Any = None,
             key: str | None = None) -> dict[str, Any] | None:
        headers = {}
        if customer_id is not None:
            headers["Authorization"] = f"Bearer {self.token_for(customer_id)}"
        if key is not None:
            headers["Idempotency-Key"] = key
        response = self.client.request(method, path, json=body, headers=headers)
        self.day.requests += 1
        if response.status_code >= 400:
            problem = response.json()
            reason = str(problem.get("detail", problem.get("code", ""))).split(":")[0]
            self.day.refused[reason] = self.day.refused.get(reason, 0) + 1
            return None
        result: dict[str, Any] = response.json()
        return result


def _wait_onboarded(engine: Engine, newcomers: list[str], timeout_s: float = 90) -> None:
    """Until the partner worker recorded a referral outcome for every newcomer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            done = conn.execute(select(func.count()).select_from(referrals)
                                .where(referrals.c.referee_id.in_(newcomers))).scalar_one()
        if int(done) >= len(newcomers):
            return
        time.sleep(0.3)


def run_packets_day(engine: Engine, prefix: str, console: Console, api_url: str,
                    token_for: Callable[[str], str],
                    publish: Callable[[str, list[tuple[bytes, bytes]]], None],
                    topics: TopicNames, *, seed: int = 14) -> PacketsDay:
    """Two generations of red packets; returns the funnel of this run's packets."""
    day = PacketsDay()
    started = time.monotonic()
    rng = random.Random(seed)
    senders = _senders(engine, prefix, SENDERS)
    crowd = [c for c in _customers(engine, prefix, 600) if c not in set(senders)]
    with httpx.Client(base_url=api_url, timeout=15) as client:
        app = _App(client, token_for, day)
        first: list[tuple[str, str]] = []  # (packet code, newcomer)
        for n, sender in enumerate(senders):
            packet = app.call("POST", "/v1/me/packets", sender,
                              {"total": TOTAL, "shares": SHARES, "split": "random",
                               "message": "新年快乐 — come bank with us"}, f"{prefix}-pk-{n}")
            if packet is None:
                continue
            code = packet["code"]
            friends = rng.sample(crowd, CLAIMS_PER_PACKET + LOOKERS_PER_PACKET)
            for i, friend in enumerate(friends):
                app.call("GET", f"/v1/packets/{code}", friend)
                if i < CLAIMS_PER_PACKET:
                    app.call("POST", f"/v1/packets/{code}/claim", friend, None,
                             f"{prefix}-pk-{n}-claim-{i}")
            newcomer = f"{prefix}-pk-new-{n:03d}"
            app.call("POST", f"/public/packets/{code}/reservations", None,
                     {"contact_hash": identity(newcomer)})
            first.append((code, newcomer))
        # (publish draws its own progress bar: rich allows one live display at a time)
        publish(topics.bank_customers, [_onboarding(who, code) for code, who in first])
        with console.status(f"core banking onboarding {len(first)} friends with packet codes"):
            _wait_onboarded(engine, [who for _, who in first])
        # Half of the newcomers send a small packet of their own: the second generation.
        second: list[tuple[str, str]] = []
        for n, (_, newcomer) in enumerate(first[::2]):
            balance = app.call("GET", "/v1/me/balance", newcomer)
            points = int(balance["available"]) if balance else 0
            if points < 2:
                continue
            packet = app.call("POST", "/v1/me/packets", newcomer,
                              {"total": points, "shares": 2, "split": "equal",
                               "message": "join me"}, f"{prefix}-pk2-{n}")
            if packet is not None:
                second.append((packet["code"], f"{prefix}-pk-new2-{n:03d}"))
        if second:
            publish(topics.bank_customers, [_onboarding(w, code) for code, w in second])
            with console.status(f"onboarding {len(second)} second-generation friends"):
                _wait_onboarded(engine, [who for _, who in second])
    with engine.connect() as conn:
        day.funnel = fission_funnel(conn, sender_prefix=prefix)
    day.took_s = time.monotonic() - started
    return day
