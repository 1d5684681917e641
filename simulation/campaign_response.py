"""Simulated customers who respond to campaigns with a true effect the simulation sets.

Used to prove the uplift report (``points-ledger campaigns report``) against a known truth:
each :class:`CampaignEffect` names a campaign of the rule file, the profile condition of the
customers it moves, and by how much (``uplift_percent``, 0 for a campaign that changes
nothing). A customer responds only when treated: in the effect's audience and *not* in the
campaign's holdout (the very hash the rules use, :func:`points.rules.holdout.in_holdout`).
A responding customer's every purchase in the period is ``uplift_percent`` larger (rounded
down), and :attr:`CampaignDay.true_incremental_minor` adds up exactly what that added: the
spend the campaign caused, which the report estimates.

Customers differ as real ones do (an activity level and a typical basket each), so the
report's interval has real noise to cope with. Reproducible from the seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from points.rules.holdout import in_holdout

__all__ = [
    "CampaignDay",
    "CampaignEffect",
    "generate_campaign_day",
    "is_young",
    "lift",
    "responses",
]

# (mcc, weight, typical amounts in fen): what a customer's purchases are drawn from
_BASKETS: list[tuple[str, int, tuple[int, ...]]] = [
    ("5411", 30, (1_250, 3_680, 8_800, 15_600)),  # groceries
    ("5812", 16, (2_800, 6_500, 12_800, 38_800)),  # restaurants
    ("5814", 10, (1_500, 2_600, 3_900)),  # fast food
    ("4121", 10, (1_800, 2_900, 4_600, 8_800)),  # ride-hailing
    ("5999", 12, (3_900, 12_900, 26_800)),  # e-commerce
    ("5912", 6, (2_300, 6_800, 15_800)),  # pharmacies
]


def is_young(profile: dict[str, Any], year: int) -> bool:
    """Under 30 in ``year`` (the rule file's ``age_below: 30``)."""
    birth_year = profile.get("birth_year")
    return birth_year is not None and year - int(birth_year) < 30


@dataclass(frozen=True)
class CampaignEffect:
    """The truth of one campaign: whom it moves and by how much."""

    campaign_id: str
    holdout_percent: int  # as in the rule file
    uplift_percent: int  # true extra spend of a treated customer in the audience
    audience: Callable[[dict[str, Any]], bool] = lambda profile: True


@dataclass
class CampaignDay:
    customers: list[tuple[bytes, bytes]]  # bank.customers messages
    transactions: list[tuple[bytes, bytes]]  # bank.transactions purchases
    #: campaign id -> the spend its treated customers added (exact, minor units)
    true_incremental_minor: dict[str, int] = field(default_factory=dict)
    #: campaign id -> customers it treated (in audience, not held out)
    treated_customers: dict[str, int] = field(default_factory=dict)


def lift(amount_minor: int, uplift_percent: int) -> int:
    """A treated customer's purchase: ``uplift_percent`` larger, rounded down."""
    return amount_minor * (100 + uplift_percent) // 100


def responses(
    profiles: Iterable[dict[str, Any]], effects: Sequence[CampaignEffect]
) -> dict[str, tuple[str, int]]:
    """customer id -> (campaign id, uplift percent) for each customer a non-zero effect moves:
    in its audience and not held out. (One campaign moves a customer: the first that does.)"""
    moved: dict[str, tuple[str, int]] = {}
    for profile in profiles:
        customer = str(profile["customer_id"])
        for effect in effects:
            if (
                effect.uplift_percent
                and effect.audience(profile)
                and not in_holdout(effect.campaign_id, customer, effect.holdout_percent)
            ):
                moved[customer] = (effect.campaign_id, effect.uplift_percent)
                break
    return moved


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def generate_campaign_day(
    *,
    seed: int,
    customers: int,
    purchases_per_customer: float,
    day: datetime,
    effects: list[CampaignEffect],
    prefix: str = "cx",
    young_share: float = 0.4,
) -> CampaignDay:
    """One day of purchases (``day`` is its start, zone-aware) under ``effects``."""
    rng = random.Random(seed)
    mccs = [m for m, w, _ in _BASKETS for _ in range(w)]
    amounts = {m: a for m, _, a in _BASKETS}
    out = CampaignDay([], [])
    for effect in effects:
        out.true_incremental_minor[effect.campaign_id] = 0
        out.treated_customers[effect.campaign_id] = 0
    for n in range(customers):
        customer = f"{prefix}-{n:06d}"
        age = rng.randint(19, 29) if rng.random() < young_share else rng.randint(30, 70)
        profile = {
            "event_type": "customer_profile",
            "event_id": f"{prefix}-prof-{n}",
            "customer_id": customer,
            "occurred_at": (day - timedelta(days=1)).isoformat(),
            "segment": "young" if age < 30 else rng.choice(["mass", "long_tail", "affluent"]),
            "joined_at": (day - timedelta(days=rng.choice([30, 400, 2000]))).isoformat(),
            "birth_year": day.year - age,
            "status": "active",
        }
        out.customers.append((customer.encode(), _encode(profile)))
        responding = [
            effect
            for effect in effects
            if effect.uplift_percent
            and effect.audience(profile)
            and not in_holdout(effect.campaign_id, customer, effect.holdout_percent)
        ]
        for effect in effects:
            if effect.audience(profile) and not in_holdout(
                effect.campaign_id, customer, effect.holdout_percent
            ):
                out.treated_customers[effect.campaign_id] += 1
        # Heterogeneous customers: how often they buy, and how big their baskets are.
        activity = rng.lognormvariate(0, 0.5)
        basket = rng.lognormvariate(0, 0.3)
        count = _poisson(rng, purchases_per_customer * activity)
        for k in range(count):
            mcc = rng.choice(mccs)
            base = max(1, int(rng.choice(amounts[mcc]) * basket))
            amount = base
            for effect in responding:  # one non-zero effect per customer in practice
                lifted = lift(amount, effect.uplift_percent)
                out.true_incremental_minor[effect.campaign_id] += lifted - amount
                amount = lifted
            at = day + timedelta(seconds=rng.randrange(86_400))
            body = {
                "event_type": "purchase",
                "event_id": f"{prefix}-t{n}-{k}",
                "customer_id": customer,
                "amount_minor": amount,
                "currency": "CNY",
                "mcc": mcc,
                "merchant_id": f"M-{rng.randrange(5000):05d}",
                "channel": rng.choice(["card_present", "online", "mobile"]),
                "occurred_at": at.isoformat(),
            }
            out.transactions.append((customer.encode(), _encode(body)))
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method (means here are small)."""
    limit = pow(2.718281828459045, -mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
