"""A reproducible slice of a bank's day, and a way to compare two ledgers built from it.

The generator mixes what production sees: purchases across an MCC mix, partial and full
refunds, reversals, refunds published before their purchase (out of order), producer
duplicates and malformed messages. Per-customer order is what Kafka preserves (one partition
per customer), so a reference run that applies the same messages in publish order must end
with the same ledger as any correct run through the broker, however often it crashes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from points.decoding import RawMessage
from points.earning.tables import customer_rule_state
from points.ledger import verify
from points.ledger.tables import accounts, balances, entries

MCCS = ["5411", "5411", "5812", "5814", "4121", "5311", "5999", "5541", "4511", "7011"]
SEGMENTS = ["long_tail", "mass", "young", "dormant", "affluent"]
BASE_TIME = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@dataclass
class Scenario:
    profiles: list[tuple[bytes, bytes]] = field(default_factory=list)
    transactions: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    distinct_valid_transactions: int = 0
    malformed: int = 0


def _purchase(event_id: str, customer: str, amount: int, mcc: str, at: datetime) -> dict[str, Any]:
    return {
        "event_type": "purchase",
        "event_id": event_id,
        "customer_id": customer,
        "amount_minor": amount,
        "currency": "CNY",
        "mcc": mcc,
        "merchant_id": "m-0001",
        "channel": "card_present",
        "occurred_at": at.isoformat(),
    }


def _refund(
    event_id: str, original: dict[str, Any], amount: int, kind: str, at: datetime
) -> dict[str, Any]:
    return {
        **{k: original[k] for k in ("customer_id", "currency", "mcc", "merchant_id", "channel")},
        "event_type": kind,
        "event_id": event_id,
        "original_event_id": original["event_id"],
        "amount_minor": amount,
        "occurred_at": at.isoformat(),
    }


def build(seed: int, customers: int, purchases: int) -> Scenario:
    rng = random.Random(seed)
    out = Scenario()
    ids = [f"cust-{seed}-{i:04d}" for i in range(customers)]
    for customer in ids:
        joined = BASE_TIME - timedelta(days=rng.choice([3, 40, 400, 2000]))
        profile = {
            "event_type": "customer_profile",
            "event_id": f"prof-{customer}",
            "customer_id": customer,
            "occurred_at": (BASE_TIME - timedelta(days=1)).isoformat(),
            "segment": rng.choice(SEGMENTS),
            "joined_at": joined.isoformat(),
            "birth_year": rng.choice([1962, 1985, 1999, 2003]),
            "status": "active",
        }
        out.profiles.append((customer.encode(), json.dumps(profile).encode()))

    messages: list[tuple[bytes | None, bytes]] = []
    valid = 0
    for i in range(purchases):
        customer = rng.choice(ids)
        at = BASE_TIME + timedelta(minutes=i)
        amount = rng.choice([800, 2550, 6800, 12990, 45000, 128000])
        purchase = _purchase(f"p-{seed}-{i}", customer, amount, rng.choice(MCCS), at)
        roll = rng.random()
        body = json.dumps(purchase).encode()
        if roll < 0.04:
            # out of order: the refund is published before its purchase
            refund = _refund(f"r-{seed}-{i}", purchase, amount, "refund", at + timedelta(hours=1))
            messages.append((customer.encode(), json.dumps(refund).encode()))
            messages.append((customer.encode(), body))
            valid += 2
            continue
        messages.append((customer.encode(), body))
        valid += 1
        if roll < 0.10:
            partial = rng.choice([amount // 2, amount // 3, amount])
            refund = _refund(f"r-{seed}-{i}", purchase, partial, "refund", at + timedelta(hours=2))
            messages.append((customer.encode(), json.dumps(refund).encode()))
            valid += 1
        elif roll < 0.12:
            reversal = _refund(
                f"v-{seed}-{i}", purchase, amount, "reversal", at + timedelta(minutes=5)
            )
            messages.append((customer.encode(), json.dumps(reversal).encode()))
            valid += 1
        if rng.random() < 0.05:
            messages.append((customer.encode(), body))  # the producer retried: a duplicate
        if rng.random() < 0.01:
            messages.append((customer.encode(), body[: len(body) // 2]))  # truncated JSON
            out.malformed += 1
    out.transactions = messages
    out.distinct_valid_transactions = valid
    return out


def as_raw(topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> list[RawMessage]:
    return [RawMessage(topic, 0, offset, key, value) for offset, (key, value) in enumerate(records)]


@dataclass(frozen=True)
class LedgerSnapshot:
    """What must be identical between two runs: entries, balances, rule state. Not ids or
    timestamps, which legitimately differ."""

    entries: frozenset[tuple[str, str, str, str | None, int | None]]
    balances: dict[tuple[str, str, str], int]
    rule_states: dict[str, Any]


def snapshot(engine: Engine) -> LedgerSnapshot:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                entries.c.idempotency_key,
                entries.c.kind,
                entries.c.status,
                entries.c.customer_id,
                entries.c.amount,
            )
        ).all()
        balance_rows = conn.execute(
            select(
                accounts.c.program, accounts.c.owner, accounts.c.kind, balances.c.balance
            ).select_from(balances.join(accounts, accounts.c.id == balances.c.account_id))
        ).all()
        states: dict[str, Any] = dict(
            conn.execute(
                select(customer_rule_state.c.customer_id, customer_rule_state.c.state)
            ).tuples().all()
        )
    totals: dict[tuple[str, str, str], int] = {}
    for program, owner, kind, balance in balance_rows:
        key = (program, owner, kind)
        totals[key] = totals.get(key, 0) + int(balance)  # hot accounts are sharded: sum shards
    return LedgerSnapshot(
        entries=frozenset(
            (k, kind, status, c, None if a is None else int(a)) for k, kind, status, c, a in rows
        ),
        balances=totals,
        rule_states=states,
    )


def assert_clean(engine: Engine) -> None:
    with engine.connect() as conn:
        report = verify(conn)
    assert report.ok, report.violations[:10]
