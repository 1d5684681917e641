"""A day of a retail bank's card and app traffic, generated reproducibly from a seed.

Customers span the segments the strategy paper targets (young, long tail, dormant, mass,
affluent); card purchases follow a realistic MCC mix with partner scenes (ride-hailing,
e-commerce, airline); some purchases are refunded (partly or fully) or reversed; app users
check in and share. Every message is (key, value) bytes, keyed by customer id.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from simulation.campaign_response import CampaignEffect, lift, responses

__all__ = ["DEFAULT_DAY", "DayTraffic", "TrafficMix", "generate_day"]

# (mcc, weight, typical amounts in fen)
MCC_MIX: list[tuple[str, int, tuple[int, ...]]] = [
    ("5411", 30, (1_250, 3_680, 8_800, 15_600, 32_000)),  # groceries
    ("5812", 14, (2_800, 6_500, 12_800, 38_800)),  # restaurants
    ("5814", 10, (1_500, 2_600, 3_900)),  # fast food, tea shops
    ("4121", 8, (1_800, 2_900, 4_600, 8_800)),  # ride-hailing
    ("5311", 6, (9_900, 29_900, 59_900)),  # department stores
    ("5999", 10, (3_900, 12_900, 26_800, 89_900)),  # e-commerce
    ("5541", 6, (20_000, 35_000, 50_000)),  # fuel
    ("4900", 4, (8_600, 15_000, 32_000)),  # utilities
    ("4511", 2, (68_000, 128_000, 310_000)),  # airlines
    ("7011", 2, (45_800, 88_800)),  # hotels
    ("6011", 2, (50_000, 100_000)),  # cash (ATM): earns nothing
    ("5912", 6, (2_300, 6_800, 15_800)),  # pharmacies
]
PARTNER_MERCHANTS = {
    "4121": ("ridehail", "M-RIDEHAIL-0001"),
    "5999": ("eshop", "M-ESHOP-0001"),
    "4511": ("airline", "M-AIRLINE-0001"),
}
#: the simulated day when none is given (the demo's)
DEFAULT_DAY = datetime(2026, 11, 26, tzinfo=UTC)
SEGMENTS = [("young", 25), ("long_tail", 30), ("dormant", 15), ("mass", 22), ("affluent", 8)]


@dataclass(frozen=True)
class TrafficMix:
    partner_share: float = 0.35  # of purchases in a partner's MCC, how many are at the partner
    refund_rate: float = 0.03
    reversal_rate: float = 0.005
    duplicate_rate: float = 0.01  # producer retries
    malformed_rate: float = 0.0005
    check_ins_per_customer: float = 0.3
    shares_per_customer: float = 0.05


@dataclass
class DayTraffic:
    customers: list[tuple[bytes, bytes]]
    transactions: list[tuple[bytes, bytes]]
    activity: list[tuple[bytes, bytes]]
    purchases: int
    refunds: int
    reversals: int
    duplicates: int
    malformed: int
    #: campaign id -> the net spend (after refunds) its treated customers added
    #: (simulation/campaign_response.py)
    true_incremental_minor: dict[str, int] = field(default_factory=dict)

    @property
    def distinct_valid_transactions(self) -> int:
        return self.purchases + self.refunds + self.reversals


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _profiles(
    rng: random.Random, prefix: str, count: int, day: datetime
) -> Iterator[dict[str, Any]]:
    names = [s for s, w in SEGMENTS for _ in range(w)]
    for i in range(count):
        segment = rng.choice(names)
        age = rng.randint(19, 29) if segment == "young" else rng.randint(24, 70)
        joined_days = rng.choice([2, 20, 200, 900, 3000]) if segment != "dormant" else 1500
        customer_id = f"{prefix}-c{i:07d}"
        profile = {
            "event_type": "customer_profile",
            "event_id": f"{prefix}-prof-{i}",
            "customer_id": customer_id,
            "occurred_at": (day - timedelta(hours=1)).isoformat(),
            "segment": segment,
            "joined_at": (day - timedelta(days=joined_days)).isoformat(),
            "birth_year": day.year - age,
            "status": "dormant" if segment == "dormant" else "active",
        }
        consent = marketing_consent(customer_id)
        if consent is not None:
            profile["marketing_consent"] = consent
        yield profile


def marketing_consent(customer_id: str) -> bool | None:
    """The simulated opt-in to marketing: 70% yes, 20% no, 10% never asked (field absent).

    From a hash of the id, not the day's random stream, so adding it left every other draw of
    a seeded day (amounts, campaign responses) as it was."""
    bucket = zlib.crc32(customer_id.encode()) % 10
    return None if bucket == 9 else bucket < 7


def generate_day(
    *,
    seed: int,
    customers: int,
    transactions: int,
    day: datetime | None = None,
    mix: TrafficMix = TrafficMix(),
    prefix: str | None = None,
    effects: Sequence[CampaignEffect] = (),
) -> DayTraffic:
    """``transactions`` purchases (plus refunds, reversals, duplicates, a few malformed).

    With ``effects``, customers treated by a campaign spend its true uplift more on every
    purchase (``simulation.campaign_response.lift``); the same seed without effects gives the
    same day as before."""
    rng = random.Random(seed)
    start = (day or DEFAULT_DAY).replace(hour=0, minute=0, second=0, microsecond=0)
    tag = prefix or f"d{seed}"
    profiles = list(_profiles(rng, tag, customers, start))
    customer_ids = [p["customer_id"] for p in profiles]
    # A long tail: a few customers transact a lot, most rarely (Zipf-like weights).
    weights = [1.0 / (1 + (i % 1000)) ** 0.6 for i in range(customers)]
    mccs = [m for m, w, _ in MCC_MIX for _ in range(w)]
    amounts = {m: a for m, _, a in MCC_MIX}
    chosen = rng.choices(customer_ids, weights=weights, k=transactions)
    uplift = responses(profiles, effects)
    truth = dict.fromkeys((effect.campaign_id for effect in effects), 0)
    out: list[tuple[bytes, bytes]] = []
    counts = {"refund": 0, "reversal": 0, "dup": 0, "bad": 0}
    seconds_per_txn = 86_400 / max(transactions, 1)
    for i, customer in enumerate(chosen):
        mcc = rng.choice(mccs)
        at = start + timedelta(seconds=int(i * seconds_per_txn), milliseconds=rng.randrange(1000))
        body: dict[str, Any] = {
            "event_type": "purchase",
            "event_id": f"{tag}-t{i}",
            "customer_id": customer,
            "amount_minor": (base := rng.choice(amounts[mcc])),
            "currency": "CNY",
            "mcc": mcc,
            "merchant_id": f"M-{rng.randrange(5000):05d}",
            "channel": "atm" if mcc == "6011" else rng.choice(["card_present", "online", "mobile"]),
            "occurred_at": at.isoformat(),
        }
        response = uplift.get(customer)
        if response is not None:
            body["amount_minor"] = lift(base, response[1])
        if mcc in PARTNER_MERCHANTS and rng.random() < mix.partner_share:
            partner_id, merchant = PARTNER_MERCHANTS[mcc]
            body["merchant_id"] = merchant
            body["partner_id"] = partner_id
        if response is not None:
            truth[response[0]] += body["amount_minor"] - base
        key = customer.encode()
        value = _encode(body)
        out.append((key, value))
        if rng.random() < mix.duplicate_rate:
            out.append((key, value))
            counts["dup"] += 1
        roll = rng.random()
        if roll < mix.refund_rate + mix.reversal_rate:
            kind = "refund" if roll < mix.refund_rate else "reversal"
            # (rng.choice over two items: the same draw as choosing between the two amounts)
            half = kind == "refund" and rng.choice((False, True))
            amount = _refunded(body["amount_minor"], half)
            if response is not None:  # what would have come back without the campaign
                truth[response[0]] -= amount - _refunded(base, half)
            refund = {
                **{
                    k: body[k] for k in ("customer_id", "currency", "mcc", "merchant_id", "channel")
                },
                "event_type": kind,
                "event_id": f"{tag}-{kind[:3]}{i}",
                "original_event_id": body["event_id"],
                "amount_minor": amount,
                "occurred_at": (at + timedelta(minutes=rng.randint(5, 600))).isoformat(),
            }
            out.append((key, _encode(refund)))
            counts[kind] += 1
        if rng.random() < mix.malformed_rate:
            out.append((key, value[: len(value) // 2]))
            counts["bad"] += 1
    activity: list[tuple[bytes, bytes]] = []
    for n in range(int(customers * mix.check_ins_per_customer)):
        customer = rng.choice(customer_ids)
        at = start + timedelta(hours=rng.randint(7, 22), minutes=rng.randrange(60))
        activity.append(
            (
                customer.encode(),
                _encode(
                    {
                        "event_type": "check_in",
                        "event_id": f"{tag}-ci{n}",
                        "customer_id": customer,
                        "occurred_at": at.isoformat(),
                    }
                ),
            )
        )
    for n in range(int(customers * mix.shares_per_customer)):
        customer = rng.choice(customer_ids)
        at = start + timedelta(hours=rng.randint(7, 22), minutes=rng.randrange(60))
        activity.append(
            (
                customer.encode(),
                _encode(
                    {
                        "event_type": "share",
                        "event_id": f"{tag}-sh{n}",
                        "customer_id": customer,
                        "occurred_at": at.isoformat(),
                        "network": rng.choice(["wechat", "weibo", "douyin"]),
                        "content_id": f"offer-{rng.randrange(40)}",
                    }
                ),
            )
        )
    return DayTraffic(
        customers=[(p["customer_id"].encode(), _encode(p)) for p in profiles],
        transactions=out,
        activity=activity,
        purchases=transactions,
        refunds=counts["refund"],
        reversals=counts["reversal"],
        duplicates=counts["dup"],
        malformed=counts["bad"],
        true_incremental_minor=truth,
    )


def _refunded(amount: int, half: bool) -> int:
    return amount // 2 or 1 if half else amount
