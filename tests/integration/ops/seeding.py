"""Demo-like data for the operations dashboard's tests: a simulated day through the real
earning pipeline (``EarningService`` over ``simulation.traffic``), a few bad messages for the
dead letter queue, swaps and referrals written straight into their tables, and red packets
created, opened and claimed through the gifts desk over two generations."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert

from points.decoding import RawMessage
from points.earning import EarningService
from points.exchange.tables import known_customers, referrals, swaps
from points.gifts import desk, fission
from points.gifts.funnel import record_open
from points.gifts.policy import GiftSettings
from points.ledger import Earn, apply_batch
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
    packets: int


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
    n_packets = seed_packets(engine, now)
    return Seeded(events=stored, dead_letters=rejected, swaps=n_swaps,
                  referrals=n_referrals, packets=n_packets)


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


PACKET_SENDERS = 3  # generation 0; each packet: 10 shares, 6 claimed, 2 lookers, 1 newcomer


def seed_packets(engine: Engine, now: datetime) -> int:
    """Three customers send 10-share packets: six friends claim each, two more only open it,
    and a newcomer onboards with the code (generation 1); each newcomer's own one-point packet
    brings one more (generation 2). The funnel by generation has every step non-zero."""
    policy = GiftSettings(min_account_age_days=0)

    def known(conn: Connection, customer_id: str) -> None:
        conn.execute(known_customers.insert().values(
            customer_id=customer_id, known_since=now - timedelta(days=60), evidence="ops-seed",
            identity_hash=f"ops-id-{customer_id}", updated_at=now))

    def newcomer(conn: Connection, packet: dict[str, Any], customer_id: str) -> None:
        known(conn, customer_id)
        fission.onboard(conn, packet=packet, customer_id=customer_id, now=now,
                        event_id=f"onb-{customer_id}")
        fission.record_generation(conn, packet=packet, customer_id=customer_id,
                                  referral_id=f"ref-{customer_id}", now=now)

    packets = 0
    with engine.begin() as conn:
        for n in range(PACKET_SENDERS):
            sender = f"ops-pk-sender-{n}"
            known(conn, sender)
            apply_batch(conn, [Earn(f"ops-pk-fund-{n}", sender, 2000, now + timedelta(days=90))],
                        now=now)
            packet = desk.create_packet(conn, sender_id=sender, packet_id=f"ops-pk-{n}",
                                        total=1000, shares=10, split_mode="random",
                                        message="", now=now, policy=policy)
            for i in range(8):
                friend = f"ops-pk-friend-{n}-{i}"
                known(conn, friend)
                record_open(conn, packet_id=packet["packet_id"],
                            opener=f"ops-id-{friend}", now=now)
                if i < 6:
                    desk.claim_packet(conn, claimant_id=friend, code=packet["code"], now=now)
            brought = f"ops-pk-new-{n}"
            newcomer(conn, packet, brought)
            # One point, one share: the newcomer's random share may be a single point.
            second = desk.create_packet(conn, sender_id=brought, packet_id=f"ops-pk-{n}-g1",
                                        total=1, shares=1, split_mode="equal", message="",
                                        now=now, policy=policy)
            newcomer(conn, second, f"ops-pk-new-{n}-g2")
            packets += 2
    return packets
