"""Seeded generators of short per-customer message streams, as published on the wire.

Messages follow docs/schemas/*.json (bank.transactions, bank.customers, customer.activity):
plain dicts with ``topic`` kept beside them, never a ``points`` model. A stream holds one
customer's profile (sent first), purchases over an MCC mix (partner merchants included),
refunds (full, partial, several partials, reversals), refunds that arrive before their purchase,
producer duplicates, check-in runs, shares, challenge opt-ins, weekly purchase habits, long
pauses (dormancy), and arrival out of event-time order by less than the 72 h lateness window.

Everything is a pure function of a ``random.Random``, so a seed reproduces a stream exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "NOW",
    "TOPIC_ACTIVITY",
    "TOPIC_CUSTOMERS",
    "TOPIC_TRANSACTIONS",
    "Features",
    "Stream",
    "customer_stream",
    "day_stream",
    "iso",
]

TOPIC_TRANSACTIONS = "bank.transactions"
TOPIC_CUSTOMERS = "bank.customers"
TOPIC_ACTIVITY = "customer.activity"

#: The clock the pipeline runs at: every generated event is in its past (no "future" scoring).
NOW = datetime(2026, 12, 20, 0, 0, tzinfo=UTC)
EARLIEST = datetime(2026, 8, 1, tzinfo=UTC)
LATENESS_WINDOW = timedelta(hours=72)

# (mcc, merchant id, partner_id set by core banking or None), weighted by how often they occur
MERCHANTS: list[tuple[str, str, str | None, int]] = [
    ("5411", "M-GROCER-01", None, 20),
    ("5499", "M-GROCER-02", None, 5),
    ("5812", "M-DINER-01", None, 12),
    ("5814", "M-CAFE-01", None, 5),
    ("4121", "M-TAXI-01", None, 4),
    ("4121", "M-RIDEHAIL-0001", None, 6),
    ("4121", "M-RIDEHAIL-0002", None, 2),
    ("4121", "M-OTHER-RIDES", "ridehail", 2),
    ("5311", "M-ESHOP-0001", None, 5),
    ("5999", "M-SHOP-01", None, 6),
    ("3005", "M-CARRIER-01", None, 2),
    ("4511", "M-AIRLINE-0001", None, 3),
    ("7011", "M-HOTEL-01", None, 2),
    ("5541", "M-FUEL-01", None, 4),
    ("4900", "M-POWER-01", None, 3),
    ("7999", "M-MISC-01", None, 5),
]
CHANNELS = [("card_present", 50), ("online", 25), ("mobile", 20), ("atm", 3), ("transfer", 2)]
SEGMENTS = ["long_tail", "mass", "affluent"]


def iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass(frozen=True)
class Features:
    """What a stream may contain; the default turns everything on."""

    out_of_order: bool = True
    # Purchases, refunds and challenge opt-ins overtaking each other. Off by default while the
    # pipeline decides reactivation, challenge entry, cap room and what a refund undoes on
    # later purchases by arrival order (model findings M3-M5); check-ins, shares and profiles
    # still arrive late, and refunds still overtake their own purchase (refund_before_purchase).
    reorder_purchases: bool = False
    refund_before_purchase: bool = True
    duplicates: bool = True
    activity: bool = True
    max_purchases: int = 12


@dataclass
class Stream:
    """One customer's messages in arrival order, each as (topic, body)."""

    customer_id: str
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [body for _, body in self.messages]


# Arrival of these keeps their event-time order unless Features.reorder_purchases.
ORDER_KEEPING_TYPES = frozenset(
    {"purchase", "partner_purchase", "challenge_opt_in", "refund", "reversal"}
)


def _jitter_h(body: dict[str, Any], jitter_h: float, features: Features) -> float:
    if body.get("event_type") in ORDER_KEEPING_TYPES and not features.reorder_purchases:
        return 0
    return jitter_h


def _weighted(rng: random.Random, items: list[Any]) -> Any:
    return rng.choices(
        [i[:-1] if len(i) > 2 else i[0] for i in items], weights=[i[-1] for i in items]
    )[0]


def _amount(rng: random.Random) -> int:
    """Mostly everyday sums, some around thresholds, a few large enough to hit the caps."""
    roll = rng.random()
    if roll < 0.55:
        return rng.randint(100, 30_000)
    if roll < 0.8:
        return rng.choice([999, 1_000, 1_999, 2_000, 2_999, 3_000, 4_999, 5_000, 29_999, 30_000])
    if roll < 0.95:
        return rng.randint(30_000, 500_000)
    return rng.randint(500_000, 2_500_000)


def _gap(rng: random.Random) -> timedelta:
    roll = rng.random()
    if roll < 0.35:
        return timedelta(minutes=rng.randint(1, 600))
    if roll < 0.7:
        return timedelta(hours=rng.randint(10, 50))
    if roll < 0.92:
        return timedelta(days=rng.randint(2, 9), minutes=rng.randint(0, 1_439))
    return timedelta(days=rng.randint(85, 200))  # a long pause: dormancy and reactivation


class _Builder:
    def __init__(self, rng: random.Random, customer_id: str) -> None:
        self.rng = rng
        self.customer_id = customer_id
        self.seq = 0
        self.events: list[tuple[datetime, str, dict[str, Any]]] = []

    def next_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.customer_id}-{self.seq}"

    def add(self, at: datetime, topic: str, body: dict[str, Any]) -> None:
        self.events.append((at, topic, body))

    def purchase(self, at: datetime, amount: int | None = None) -> dict[str, Any]:
        mcc, merchant, partner = _weighted(self.rng, MERCHANTS)
        body: dict[str, Any] = {
            "event_type": "purchase",
            "event_id": self.next_id("p"),
            "customer_id": self.customer_id,
            "occurred_at": iso(at),
            "amount_minor": amount if amount is not None else _amount(self.rng),
            "currency": "CNY",
            "mcc": mcc,
            "merchant_id": merchant,
            "channel": _weighted(self.rng, CHANNELS),
        }
        if partner is not None:
            body["partner_id"] = partner
        self.add(at, TOPIC_TRANSACTIONS, body)
        return body

    def refund(self, purchase: dict[str, Any], at: datetime, amount: int, kind: str) -> None:
        body = {
            "event_type": kind,
            "event_id": self.next_id("r"),
            "customer_id": self.customer_id,
            "occurred_at": iso(at),
            "original_event_id": purchase["event_id"],
            "amount_minor": amount,
            "currency": "CNY",
            "mcc": purchase["mcc"],
            "merchant_id": purchase["merchant_id"],
            "channel": purchase["channel"],
        }
        self.add(at, TOPIC_TRANSACTIONS, body)

    def activity(self, at: datetime, kind: str) -> None:
        body: dict[str, Any] = {
            "event_type": kind,
            "event_id": self.next_id("a"),
            "customer_id": self.customer_id,
            "occurred_at": iso(at),
        }
        if kind == "share":
            body |= {"network": self.rng.choice(["wechat", "weibo"]), "content_id": "offer-1"}
        if kind == "challenge_opt_in":
            body["challenge_id"] = "explorer-monthly"
        self.add(at, TOPIC_ACTIVITY, body)


def _refunds(
    b: _Builder,
    purchases: list[dict[str, Any]],
    rate: float,
    early: bool,
    latest: datetime | None = None,
) -> None:
    """Full, partial, several partial refunds and reversals of some purchases."""
    for p in purchases:
        if b.rng.random() >= rate:
            continue
        at = datetime.fromisoformat(p["occurred_at"])
        amount = p["amount_minor"]
        # a refund that may arrive before its purchase stays inside the lateness window
        delay = (
            timedelta(minutes=b.rng.randint(1, 60 * 70))
            if early or b.rng.random() < 0.5
            else timedelta(days=b.rng.randint(1, 40))
        )
        if latest is not None:
            # a day's stream: every refund comes before ``latest``
            room_s = int((latest - at).total_seconds()) - 600
            if room_s < 60:
                continue
            delay = timedelta(seconds=b.rng.randint(60, room_s))
        style = b.rng.random()
        if style < 0.45 or amount < 2:
            b.refund(p, at + delay, amount, "refund")
        elif style < 0.55:
            b.refund(p, at + delay, amount, "reversal")
        elif style < 0.8:
            b.refund(p, at + delay, b.rng.randint(1, amount - 1), "refund")
        else:
            first = b.rng.randint(1, amount - 1)
            b.refund(p, at + delay, first, "refund")
            rest = amount - first if b.rng.random() < 0.6 else b.rng.randint(1, amount - first)
            second = delay + timedelta(minutes=b.rng.randint(1, 600))
            if latest is not None:
                second = min(second, latest - at - timedelta(seconds=30))
            b.refund(p, at + second, rest, "refund")


def _profile(rng: random.Random, b: _Builder, start: datetime) -> dict[str, Any]:
    """An onboarding or a profile: new customers, long-standing ones who never bought (dormant
    by the docs' count from joining), young ones, long-tail ones."""
    joined = start - timedelta(days=rng.choice([rng.randint(0, 60), rng.randint(100, 500)]))
    profile: dict[str, Any] = {
        "event_id": b.next_id("c"),
        "customer_id": b.customer_id,
        "occurred_at": iso(joined),
        "joined_at": iso(joined),
        "segment": rng.choice(SEGMENTS),
    }
    if rng.random() < 0.85:
        profile["birth_year"] = rng.randint(1950, 2006)
    if rng.random() < 0.5:
        profile |= {"event_type": "customer_onboarded"}
    else:
        profile |= {
            "event_type": "customer_profile",
            "status": rng.choice(["active", "active", "dormant"]),
        }
    return profile


def day_stream(
    rng: random.Random,
    customer_id: str,
    now: datetime,
    purchases: int,
    refund_rate: float = 0.05,
) -> Stream:
    """One customer's last 24 hours before ``now``: ``purchases`` purchases, about
    ``refund_rate`` of them refunded (full, partial, twice partial, reversed; some arriving
    before their purchase), a check-in or two across midnight, a share now and then,
    duplicates, and arrival shuffled by up to 6 hours (inside the 72 h window)."""
    b = _Builder(rng, customer_id)
    day_start = now - timedelta(hours=24)
    latest = now - timedelta(minutes=5)
    profile = _profile(rng, b, day_start)
    span_s = int((latest - day_start).total_seconds()) - 1200
    bought = [
        b.purchase(day_start + timedelta(seconds=t))
        for t in sorted(rng.randint(0, span_s) for _ in range(purchases))
    ]
    for _ in range(rng.choice([0, 1, 1, 2])):
        b.activity(day_start + timedelta(seconds=rng.randint(0, span_s)), "check_in")
    if rng.random() < 0.1:
        b.activity(day_start + timedelta(seconds=rng.randint(0, span_s)), "share")
    _refunds(b, bought, rate=refund_rate, early=True, latest=latest)
    # As the 5,000-stream check: refunds do not overtake their purchase here (finding M6).
    features = Features(refund_before_purchase=False)
    return Stream(customer_id, _arrival(rng, b, profile, features, jitters_h=(0, 0, 1, 6)))


def customer_stream(
    rng: random.Random, customer_id: str, features: Features = Features()
) -> Stream:
    """One customer's short stream: profile first, then events in a plausible arrival order."""
    b = _Builder(rng, customer_id)
    start = EARLIEST + timedelta(minutes=rng.randint(0, 60 * 24 * 90))
    profile = _profile(rng, b, start)
    at = start
    purchases: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, features.max_purchases)):
        shape = rng.random()
        if features.activity and shape < 0.12:
            # a check-in run across midnights, sometimes missing a day
            for _day in range(rng.randint(3, 9)):
                if rng.random() < 0.9:
                    b.activity(at, "check_in")
                at += timedelta(days=rng.choice([1, 1, 1, 2]), minutes=rng.randint(-90, 90))
            continue
        if shape < 0.2:
            # a weekly habit: a purchase of 10 yuan or more every week
            for _week in range(rng.randint(2, 5)):
                purchases.append(b.purchase(at, rng.randint(1_000, 20_000)))
                at += timedelta(days=rng.choice([6, 7, 8]), hours=rng.randint(0, 23))
            continue
        if features.activity and shape < 0.3:
            b.activity(at, rng.choice(["share", "share", "challenge_opt_in", "check_in"]))
        else:
            purchases.append(b.purchase(at))
        at += _gap(rng)
        if at > NOW - timedelta(days=12):
            break
    _refunds(b, purchases, rate=rng.choice([0.0, 0.1, 0.3, 0.6]), early=False)
    return Stream(customer_id, _arrival(rng, b, profile, features))


def _arrival(
    rng: random.Random,
    b: _Builder,
    profile: dict[str, Any],
    features: Features,
    jitters_h: tuple[int, ...] = (0, 0, 1, 24, 71),
) -> list[tuple[str, dict[str, Any]]]:
    """Event-time order, shuffled within the lateness window, refunds moved before their
    purchase, duplicates re-sent later; the profile goes first."""
    events = [e for e in b.events if e[0] < NOW]
    jitter_h = rng.choice(jitters_h) if features.out_of_order else 0
    keyed = [
        (at + timedelta(seconds=rng.uniform(0, _jitter_h(body, jitter_h, features) * 3600)),
         topic, body)
        for at, topic, body in events
    ]  # fmt: skip
    keyed.sort(key=lambda e: e[0])
    order = [(topic, body) for _, topic, body in keyed]
    if features.refund_before_purchase and rng.random() < 0.3:
        by_id = {body["event_id"]: i for i, (_, body) in enumerate(order)}
        for topic, body in list(order):
            original = body.get("original_event_id")
            if original is None or original not in by_id:
                continue
            gap = datetime.fromisoformat(body["occurred_at"]) - datetime.fromisoformat(
                order[by_id[original]][1]["occurred_at"]
            )
            refund_at = datetime.fromisoformat(body["occurred_at"])
            here = order.index((topic, body))
            jumped = [
                datetime.fromisoformat(m["occurred_at"]) for _, m in order[by_id[original] : here]
            ]
            # every event the refund overtakes stays within the window of it
            within = all(refund_at - t < LATENESS_WINDOW - timedelta(hours=1) for t in jumped)
            if gap < LATENESS_WINDOW - timedelta(hours=1) and within and rng.random() < 0.7:
                order.remove((topic, body))
                order.insert(by_id[original], (topic, body))
                by_id = {m["event_id"]: i for i, (_, m) in enumerate(order)}
    if features.duplicates and order and rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(order))
            order.insert(rng.randint(at + 1, len(order)), order[at])
    return [(TOPIC_CUSTOMERS, profile), *order]
