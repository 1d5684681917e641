"""Journey: the earning worker is killed (SIGKILL, a crash: no shutdown hooks, no final
offset commit) twice while core banking publishes a day through librdkafka, and restarted by
its supervisor each time. The bank must end with exactly the ledger of an undisturbed run:
no point lost, none paid twice (README, "Guarantees")."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from tests.journeys.harness import Journey, Process, event_time
from tests.journeys.messages import onboarding

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUSTOMERS = [f"crash-{n:03d}" for n in range(20)]
MCCS = ("5411", "5812", "5541", "4121", "5311", "4900")


def a_day(seed: int) -> list[dict[str, Any]]:
    """About 2,400 purchases and their refunds (full and partial, a few arriving before their
    purchase) for ``CUSTOMERS``, in a seeded order."""
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = []
    for n in range(2_400):
        customer = rng.choice(CUSTOMERS)
        purchase: dict[str, Any] = {
            "schema_version": 1, "event_type": "purchase", "event_id": f"p-{n}",
            "customer_id": customer, "amount_minor": rng.randrange(500, 90_000),
            "currency": "CNY", "mcc": rng.choice(MCCS), "merchant_id": "M-0001",
            "channel": rng.choice(("card_present", "ecommerce", "mobile")),
            "occurred_at": event_time(days_ago=2 - n / 1_500),
        }  # fmt: skip
        messages.append(purchase)
        if rng.random() < 0.06:
            full = rng.random() < 0.6
            refund = {
                "schema_version": 1, "event_type": "refund", "event_id": f"r-{n}",
                "customer_id": customer, "original_event_id": purchase["event_id"],
                "amount_minor": purchase["amount_minor"] if full
                else purchase["amount_minor"] // 3,
                "currency": "CNY", "mcc": purchase["mcc"], "merchant_id": "M-0001",
                "channel": purchase["channel"], "occurred_at": event_time(days_ago=1),
            }  # fmt: skip
            if rng.random() < 0.2:  # the refund overtakes its purchase
                messages.insert(len(messages) - 1, refund)
            else:
                messages.append(refund)
    return messages


def balances(journey: Journey) -> dict[str, dict[str, int]]:
    figures = ("available", "held", "debt", "expiring_30d", "expiring_90d")
    out = {}
    for customer in CUSTOMERS:
        reading = journey.cli_json("balance", customer)
        out[customer] = {f: reading[f] for f in figures}
    return out


def assert_same_ledger(disturbed_world: Journey, twin: Journey) -> None:
    """Every customer's balance, held points, debt and expiring points are the twin's (which
    earned something), and `verify` is clean in both worlds."""
    disturbed, undisturbed = balances(disturbed_world), balances(twin)
    assert sum(b["available"] for b in undisturbed.values()) > 0
    differing = {
        c: (disturbed[c], undisturbed[c]) for c in CUSTOMERS if disturbed[c] != undisturbed[c]
    }
    assert not differing, differing
    for world in (disturbed_world, twin):
        verdict = world.cli_json("verify")
        assert verdict["ok"] and not verdict["violations"], verdict


def start_beside_twin(journey: Journey, twin: Journey) -> Process:
    """Start the journey's worker and the twin's (which reads the same topics alongside, never
    disturbed), onboard ``CUSTOMERS`` and wait until both consumed the profiles (so purchases
    never overtake them); the journey's worker."""
    worker = journey.start_worker()
    twin.start_worker()
    with journey.bank_producer() as bank:
        for customer in CUSTOMERS:
            bank.send(journey.topics.bank_customers, onboarding(customer))
    for world in (journey, twin):
        world.wait_caught_up(world.worker_group, [journey.topics.bank_customers])
    return worker


def test_a_worker_killed_twice_mid_day_ends_with_the_ledger_of_an_undisturbed_run(
    journey: Journey, twin: Journey
) -> None:
    """Two SIGKILLs of the earning worker while a day streams in (restarted at once, as a
    supervisor would) leave every customer's balance, held points, debt and expiring points
    equal to a twin worker's that read the same topics undisturbed, and `verify` clean."""
    worker = start_beside_twin(journey, twin)

    day = a_day(seed=20261205)
    chunks = [day[i : i + 200] for i in range(0, len(day), 200)]
    kill_after = {3, 7}  # chunks after which the worker is killed mid-stream
    with journey.bank_producer(compression="lz4") as bank:
        for number, chunk in enumerate(chunks):
            for message in chunk:
                bank.send(journey.topics.bank_transactions, message)
            bank.flush()
            time.sleep(0.3)
            if number in kill_after:
                worker.kill()
                worker = journey.start_worker()
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions],
                           timeout_s=180)  # fmt: skip

    twin.wait_caught_up(twin.worker_group, [journey.topics.bank_transactions], timeout_s=180)

    assert_same_ledger(journey, twin)
