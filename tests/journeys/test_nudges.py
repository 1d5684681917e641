"""Journey: the bank's push service receives nudges on customer.nudges (docs/marketing.md,
"Nudges for the push service"; docs/rules.md, "Nudges"), through the topics and the CLI only.

The worker runs tests/fixtures/rules-nudges-journey.yaml (``POINTS_RULES__PATH``): a badge at
the 5th purchase, nudged when 2 short; the first eshop purchase cross-sells ridehail; a daily
check-in streak nudged when today has not counted; at most 1 nudge a day per customer. Core
banking says who consented (``marketing_consent`` on bank.customers).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.journeys.harness import ROOT, Journey, Record, event_time
from tests.journeys.messages import bank_transaction, profile

pytestmark = pytest.mark.integration

RULES = str(ROOT / "tests" / "fixtures" / "rules-nudges-journey.yaml")
#: the timer looks every second here, and again at what changed every second (documented
#: defaults 30 s and 600 s)
TIMER = {"POINTS_RULES__PATH": RULES, "POINTS_WORKER__NUDGE_TIMER_INTERVAL_S": "1",
         "POINTS_WORKER__NUDGE_RESCAN_INTERVAL_S": "1"}


def _nudges_of(journey: Journey, customer: str, at_least: int, timeout_s: float = 60) -> list[Any]:
    def mine(record: Record) -> bool:
        return record.key == customer.encode()

    records = journey.read_topic(
        journey.topics.customer_nudges, at_least=at_least, timeout_s=timeout_s, match=mine
    )
    return [record.json() for record in records]


def _all_nudges(journey: Journey) -> int:
    return sum(journey.end_offsets([journey.topics.customer_nudges]).values())


def _shop(journey: Journey, customer: str, occurred_at: str) -> None:
    """Three groceries purchases, then a first one at eshop, all at the same moment (so on
    the same day, whenever the test runs)."""
    with journey.bank_producer() as bank:
        for n in range(3):
            bank.send(journey.topics.bank_transactions, bank_transaction(
                "purchase", f"{customer}-p{n}", customer, 10_000, 0, occurred_at=occurred_at,
            ))  # fmt: skip
        bank.send(journey.topics.bank_transactions, bank_transaction(
            "purchase", f"{customer}-eshop", customer, 10_000, 0, occurred_at=occurred_at,
            merchant_id="M-ESHOP-0001",
        ))  # fmt: skip


def test_near_a_badge_one_nudge_within_the_cap_none_without_consent_and_a_replay_sends_none(
    journey: Journey,
) -> None:
    """ann (consented) buys 3 times, 2 short of the badge: exactly one badge-nearly nudge on
    customer.nudges, keyed by ann. Her first eshop purchase the same day would cross-sell
    ridehail, but the cap is 1 a day: not sent, listed by ``points-ledger nudges list
    --suppressed`` as cap_per_day. cat (marketing_consent false) and dov (no consent field)
    do the same and receive nothing; their nudges are listed as no_consent. Then the worker is
    killed (SIGKILL) and a worker in a new group replays every message from the start into the
    same ledger: customer.nudges gets nothing more and the list is unchanged."""
    journey.start_worker(POINTS_RULES__PATH=RULES)
    with journey.bank_producer() as bank:
        bank.send(journey.topics.bank_customers, profile("ann", marketing_consent=True))
        bank.send(journey.topics.bank_customers, profile("cat", marketing_consent=False))
        bank.send(journey.topics.bank_customers, profile("dov"))
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_customers])
    moment = event_time(days_ago=0.001)
    for customer in ("ann", "cat", "dov"):
        _shop(journey, customer, moment)
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])

    ann = _nudges_of(journey, "ann", at_least=1)
    assert [(n["nudge"], n["kind"], n["data"]["remaining"]) for n in ann] == [
        ("badge-nearly", "milestone_near", 2)
    ]
    assert ann[0]["template"] == "badge_nearly_v1" and ann[0]["customer_id"] == "ann"
    time.sleep(3)  # the relay runs every few hundred ms: give a wrong message time to show
    assert _all_nudges(journey) == 1

    suppressed = journey.cli_json("nudges", "list", "--suppressed")["nudges"]
    assert sorted((n["customer_id"], n["nudge"], n["reason_code"]) for n in suppressed) == [
        ("ann", "try-ridehail", "cap_per_day"),
        ("cat", "badge-nearly", "no_consent"),
        ("cat", "try-ridehail", "no_consent"),
        ("dov", "badge-nearly", "no_consent"),
        ("dov", "try-ridehail", "no_consent"),
    ]
    listed = journey.cli_json("nudges", "list")["nudges"]
    assert len(listed) == 6

    # Crash and replay everything through a new consumer group into the same ledger.
    journey.processes[-1].kill()
    replay_group = f"{journey.app_id}-replay"
    journey.start_worker(POINTS_RULES__PATH=RULES, POINTS_WORKER__APP_ID=replay_group)
    journey.wait_caught_up(
        replay_group, [journey.topics.bank_customers, journey.topics.bank_transactions]
    )
    time.sleep(3)
    journey.check_alive()
    assert _all_nudges(journey) == 1
    assert journey.cli_json("nudges", "list")["nudges"] == listed


def test_a_streak_at_risk_nudge_comes_from_the_timer_and_a_restart_does_not_repeat_it(
    journey: Journey,
) -> None:
    """sam checked in yesterday and not today (UTC). After the worker consumed that one
    check-in, nothing more is published to any input topic, and the leader's timer sends one
    keep-the-streak nudge. The worker is killed (SIGKILL) and restarted: its timer runs again
    and customer.nudges still holds one nudge for sam."""
    journey.start_worker(**TIMER)
    with journey.bank_producer() as bank:
        bank.send(journey.topics.bank_customers, profile("sam", marketing_consent=True))
        bank.send(journey.topics.customer_activity, {
            "schema_version": 1, "event_type": "check_in", "event_id": "sam-checkin-1",
            "customer_id": "sam", "occurred_at": event_time(days_ago=1),
        })  # fmt: skip
    inputs = [journey.topics.bank_customers, journey.topics.customer_activity,
              journey.topics.bank_transactions]  # fmt: skip
    journey.wait_caught_up(journey.worker_group, inputs)
    consumed = journey.end_offsets(inputs)

    sam = _nudges_of(journey, "sam", at_least=1, timeout_s=90)
    assert [(n["nudge"], n["kind"], n["data"]["length"]) for n in sam] == [
        ("keep-the-streak", "streak_at_risk", 1)
    ]
    assert journey.end_offsets(inputs) == consumed  # no incoming traffic caused it

    journey.processes[-1].kill()
    journey.start_worker(**TIMER)
    time.sleep(8)  # several timer rounds and relay rounds of the restarted worker
    journey.check_alive()
    assert _all_nudges(journey) == 1
    listed = journey.cli_json("nudges", "list", "--customer", "sam")["nudges"]
    assert [(n["nudge"], n["outcome"]) for n in listed] == [("keep-the-streak", "sent")]


def test_an_at_risk_customer_receives_exactly_one_win_back_nudge(journey: Journey) -> None:
    """wes bought 80, 70, 60, 50 and 45 days ago, then once today: one purchase in 30 days
    against five in the 60 before, so his lifecycle stage is at_risk (docs/rules.md,
    "Behaviour profile"): the leader's timer finds him and customer.nudges carries one
    win-back nudge with its offer (and the badge nudge his 3rd purchase earned 60 days ago,
    another day). The worker is killed (SIGKILL) and restarted; the restarted timer reads
    every customer again and finds this quiet spell answered: still one win-back."""
    journey.start_worker(**TIMER)
    with journey.bank_producer() as bank:
        bank.send(journey.topics.bank_customers, profile("wes", marketing_consent=True))
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_customers])
    with journey.bank_producer() as bank:
        for days_ago in (80, 70, 60, 50, 45, 0.001):
            bank.send(journey.topics.bank_transactions, bank_transaction(
                "purchase", f"wes-{days_ago}", "wes", 5_000, days_ago,
            ))  # fmt: skip
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])

    wes = _nudges_of(journey, "wes", at_least=2)
    assert sorted(n["nudge"] for n in wes) == ["badge-nearly", "win-back"]
    (win_back,) = [n for n in wes if n["nudge"] == "win-back"]
    assert win_back["kind"] == "lifecycle_at_risk"
    assert win_back["offer_id"] == "winback-double-points"
    assert win_back["data"] == {"stage": "at_risk"}

    journey.processes[-1].kill()
    journey.start_worker(**TIMER)
    time.sleep(8)  # timer and relay rounds of the restarted worker
    journey.check_alive()
    assert _all_nudges(journey) == 2
    listed = journey.cli_json("nudges", "list", "--customer", "wes")["nudges"]
    assert sorted((n["nudge"], n["outcome"]) for n in listed) == [
        ("badge-nearly", "sent"), ("win-back", "sent"),
    ]
