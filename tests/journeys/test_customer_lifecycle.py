"""Journey: a customer's behaviour profile moves through the lifecycle stages as their
purchases (event time, weeks apart) arrive on ``bank.transactions`` and their app check-ins
on ``customer.activity``, as ``points-ledger customer show --json`` shows; a win-back campaign
(``audience: {lifecycle: [at_risk]}``) pays only the at-risk customer; sending everything
again and replaying it through a second worker group changes no profile (docs/rules.md,
"Behaviour profile and lifecycle stages").

The worker runs tests/fixtures/rules-lifecycle.yaml (default thresholds: new 30 days, dormant
60, reactivated 30, at risk below 50% of the customer's own baseline). Times are days before
now; each step waits for the worker before the next, so the two topics' order is the story's.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.journeys.harness import ROOT, Journey, event_time
from tests.journeys.messages import bank_transaction, profile

pytestmark = pytest.mark.integration

RULES = str(ROOT / "tests" / "fixtures" / "rules-lifecycle.yaml")
LAPSING = "lifecycle-lapsing"  # weekly, then quiet, back once, quiet again, back again
STEADY = "lifecycle-steady"  # weekly throughout


def _purchase(customer: str, days_ago: int) -> dict[str, Any]:
    return bank_transaction("purchase", f"{customer}-p{days_ago}", customer, 5_000,
                            days_ago, mcc="5812", merchant_id="M-DINER-0007")  # fmt: skip


def _check_in(customer: str, days_ago: int) -> dict[str, Any]:
    return {"schema_version": 1, "event_type": "check_in",
            "event_id": f"{customer}-ci{days_ago}", "customer_id": customer,
            "occurred_at": event_time(days_ago=days_ago)}  # fmt: skip


class Story:
    """Sends the steps, remembers every message (to send them all again), reads profiles."""

    def __init__(self, journey: Journey) -> None:
        self.journey = journey
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, topic: str, messages: list[dict[str, Any]]) -> None:
        with self.journey.bank_producer() as producer:
            for message in messages:
                producer.send(topic, message)
                self.sent.append((topic, message))
        self.journey.wait_caught_up(self.journey.worker_group, [topic])

    def buy(self, customer: str, *days_ago: int) -> None:
        self.send(self.journey.topics.bank_transactions, [_purchase(customer, d) for d in days_ago])

    def check_in(self, customer: str, days_ago: int) -> None:
        self.send(self.journey.topics.customer_activity, [_check_in(customer, days_ago)])

    def show(self, customer: str) -> Any:
        return self.journey.cli_json("customer", "show", customer, "--rules", RULES)

    def stage(self, customer: str) -> str:
        return str(self.show(customer)["lifecycle"])


def test_a_customer_moves_through_the_lifecycle_and_only_the_at_risk_one_gets_the_winback(
    journey: Journey,
) -> None:
    """LAPSING buys weekly from 250 to 194 days ago (new, then active); a check-in 160 days ago
    finds them at risk (no purchase in 30 days against 8 in the baseline); they come back 150
    days ago and the win-back campaign pays that purchase 300 points, while STEADY, buying
    weekly the same day, gets none; a check-in 80 days ago finds LAPSING dormant (70 idle
    days); a purchase 70 days ago reactivates them. Every message sent again, then replayed
    by a second worker group into the same ledger, leaves every profile as it was."""
    journey.start_worker(POINTS_RULES__PATH=RULES)
    story = Story(journey)
    story.send(journey.topics.bank_customers,
               [profile(c, days_ago=400, joined_days_ago=400) for c in (LAPSING, STEADY)])
    story.buy(STEADY, *range(250, 149, -7))  # 250, 243, ..., 152

    story.buy(LAPSING, 250)
    first = story.show(LAPSING)
    assert (first["lifecycle"], first["purchases_30d"], first["recency_days"]) == ("new", 1, 0)
    story.buy(LAPSING, 243, 236, 229, 222, 215, 208, 201, 194)
    active = story.show(LAPSING)
    assert active["lifecycle"] == "active"
    assert (active["purchases_90d"], active["spend_90d_minor"]) == (9, 45_000)
    assert active["top_mcc_groups"] == [{"group": "dining", "purchases": 9}]

    story.check_in(LAPSING, 160)
    at_risk = story.show(LAPSING)
    assert (at_risk["lifecycle"], at_risk["recency_days"], at_risk["purchases_30d"]) == (
        "at_risk", 34, 0)
    assert story.stage(STEADY) == "active"

    story.buy(LAPSING, 150)
    story.buy(STEADY, 150)
    ledger = journey.read_topic(journey.topics.points_ledger, at_least=26)
    winbacks = [r.json() for r in ledger if "winback" in r.json()["rule_ids"]]
    assert [(w["customer_id"], w["source_event"], w["points"]) for w in winbacks] == [
        (LAPSING, f"{LAPSING}-p150", 50 + 300)]

    story.check_in(LAPSING, 80)
    dormant = story.show(LAPSING)
    assert (dormant["lifecycle"], dormant["recency_days"]) == ("dormant", 70)
    story.buy(LAPSING, 70)
    back = story.show(LAPSING)
    assert back["lifecycle"] == "reactivated"
    assert back["reactivated_on"] == back["last_purchase_on"] == back["as_of"]

    # Duplicates and replay: the inbox processes each event once, so no profile moves.
    profiles = {c: story.show(c) for c in (LAPSING, STEADY)}
    for topic, message in list(story.sent):
        story.send(topic, [message])
    replay_group = f"{journey.app_id}-replay"
    journey.start_worker(POINTS_RULES__PATH=RULES, POINTS_WORKER__APP_ID=replay_group)
    journey.wait_caught_up(replay_group, [journey.topics.bank_customers,
                                          journey.topics.bank_transactions,
                                          journey.topics.customer_activity])
    journey.check_alive()
    assert {c: story.show(c) for c in (LAPSING, STEADY)} == profiles
    assert profiles[LAPSING]["purchases_total"] == 11
