"""Demo-like data for the operations dashboard's tests: a simulated day through the real
earning pipeline (``EarningService`` over ``simulation.traffic``), a few bad messages for the
dead letter queue, and swaps and referrals written straight into their tables."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from points.decoding import RawMessage
from points.earning import EarningService
from points.exchange.tables import referrals, swaps
from points.rules import load_ruleset
from points.settings import TopicNames
from simulation.traffic import generate_day

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "rules" / "default.yaml"
TOPICS = TopicNames()
PARTITIONS = 4

# (partner, status, how many)
SWAPS: Sequence[tuple[str, str, int]] = (
    ("eshop", "requested", 3), ("eshop", "pending", 5), ("eshop", "completed", 40),
    ("eshop", "rejected", 4), ("eshop", "expired", 2),
    ("ridehail", "pending", 2), ("ridehail", "completed", 25), ("ridehail", "rejected", 6),
    ("airline", "requested", 1), ("airline", "completed", 12), ("airline", "expired", 3),
)
REFERRALS: Sequence[tuple[str, int]] = (
    ("invited", 30), ("signed_up", 18), ("qualified", 9), ("rewarded", 14),
    ("clawed_back", 2), ("refused", 3),
)
# (what, key, value): a message that is not JSON, one that breaks its contract, and one keyed
# by someone other than its customer.
BAD_MESSAGES: Sequence[tuple[bytes, bytes]] = (
    (b"ops-bad-1", b"{not json"),
    (b"ops-bad-2", json.dumps({"event_type": "purchase", "event_id": "x"}).encode()),
    (b"someone-else", json.dumps({
        "event_type": "purchase", "event_id": "ops-wrong-key", "customer_id": "ops-c-1",
        "amount_minor": 1000, "currency": "CNY", "mcc": "5411", "merchant_id": "m",
        "channel": "card_present", "occurred_at": "2026-11-27T09:00:00+00:00"}).encode()),
)


@dataclass(frozen=True)
class Seeded:
    events: int
    dead_letters: int
    swaps: int
    referrals: int


class _Partitions:
    """Kafka-like positions: a message goes to its key's partition, offsets grow per
    partition."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, int], int] = {}

    def raw(self, topic: str, key: bytes, value: bytes) -> RawMessage:
        partition = zlib.crc32(key) % PARTITIONS
        offset = self.next.get((topic, partition), 0)
        self.next[(topic, partition)] = offset + 1
        return RawMessage(topic, partition, offset, key, value)


def seed_day(
    engine: Engine, *, customers: int = 400, transactions: int = 3000, seed: int = 7,
    batch: int = 500,
) -> Seeded:
    """Run a simulated day through the earning pipeline, then add swaps and referrals."""
    now = datetime.now(UTC)
    service = EarningService(engine, load_ruleset(RULES), TOPICS)
    day = generate_day(seed=seed, customers=customers, transactions=transactions,
                       day=now - timedelta(hours=1), prefix="ops")
    feed = _Partitions()
    messages = [feed.raw(TOPICS.bank_customers, k, v) for k, v in day.customers]
    messages += [feed.raw(TOPICS.bank_transactions, k, v) for k, v in day.transactions]
    messages += [feed.raw(TOPICS.customer_activity, k, v) for k, v in day.activity]
    messages += [feed.raw(TOPICS.bank_transactions, k, v) for k, v in BAD_MESSAGES]
    stored = rejected = 0
    for start in range(0, len(messages), batch):
        outcome = service.process(messages[start:start + batch])
        stored += outcome.stored
        rejected += outcome.rejected
    n_swaps = seed_swaps(engine, now)
    n_referrals = seed_referrals(engine, now)
    return Seeded(events=stored, dead_letters=rejected, swaps=n_swaps,
                  referrals=n_referrals)


def seed_swaps(engine: Engine, now: datetime) -> int:
    rows: list[dict[str, object]] = []
    for partner, status, count in SWAPS:
        for i in range(count):
            swap_id = f"ops-swap-{partner}-{status}-{i}"
            rows.append({
                "swap_id": swap_id, "quote_id": f"q-{swap_id}", "customer_id": f"ops-c-{i}",
                "partner_id": partner, "partner_member_id": f"m-{i}", "points": 1000,
                "fee_points": 10, "partner_units": 200, "rate_version": f"{partner}-v1",
                "requested_at": now - timedelta(minutes=30), "deadline_at": now,
                "status": status, "reason": status, "partner_reference": None,
                "resolved_by": None, "updated_at": now,
            })
    with engine.begin() as conn:
        conn.execute(insert(swaps), rows)
    return len(rows)


def seed_referrals(engine: Engine, now: datetime) -> int:
    rows: list[dict[str, object]] = []
    for status, count in REFERRALS:
        for i in range(count):
            referral_id = f"ops-ref-{status}-{i}"
            rows.append({
                "referral_id": referral_id, "origin": "customer_invite",
                "referrer_kind": "customer", "referrer_id": f"ops-c-{i}",
                "referee_id": None if status == "invited" else f"ops-referee-{status}-{i}",
                "code": None, "partner_id": None, "status": status, "reason": status,
                "invited_at": now - timedelta(days=2), "signed_up_at": None,
                "qualify_by": None, "qualifying_event_id": None, "qualified_at": None,
                "rewards": {}, "updated_at": now,
            })
    with engine.begin() as conn:
        conn.execute(insert(referrals), rows)
    return len(rows)
