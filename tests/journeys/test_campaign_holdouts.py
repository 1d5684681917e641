"""Journey: a marketing analyst measures a campaign with a holdout (docs/rules.md "Holdouts",
docs/marketing.md), through the topics and the CLI only.

The worker runs tests/fixtures/rules-holdouts.yaml (``POINTS_RULES__PATH``, README
"Configuration"): ``young-lifestyle`` pays under-30s +50% of base points on dining and holds
20% of them out. Core banking publishes young customers and one dining purchase each; the
``points.ledger`` topic shows who was paid the campaign; ``points-ledger campaigns report
young-lifestyle --json`` lists both groups. Then the same events are replayed (sent again,
and read again from the start by a second worker group into the same ledger) and nothing
changes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.journeys.harness import ROOT, Journey
from tests.journeys.messages import bank_transaction, profile

pytestmark = pytest.mark.integration

RULES = str(ROOT / "tests" / "fixtures" / "rules-holdouts.yaml")
CUSTOMERS = [f"young-{n:03d}" for n in range(40)]


def _publish(journey: Journey) -> None:
    """Profiles first (the audience needs the birth year), then one dining purchase each."""
    with journey.bank_producer() as bank:
        for customer in CUSTOMERS:
            bank.send(
                journey.topics.bank_customers,
                profile(customer, birth_year=2000, segment="young"),
            )
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_customers])
    with journey.bank_producer() as bank:
        for customer in CUSTOMERS:
            bank.send(
                journey.topics.bank_transactions,
                bank_transaction(
                    "purchase", f"{customer}-p1", customer, 10_000, 1.0,
                    mcc="5812", merchant_id="M-DINER-0007",
                ),
            )  # fmt: skip
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])


def _report(journey: Journey) -> Any:
    return journey.cli_json("campaigns", "report", "young-lifestyle", "--rules", RULES)


def _ledger_messages(journey: Journey) -> int:
    return sum(journey.end_offsets([journey.topics.points_ledger]).values())


def test_holdout_customers_get_no_campaign_points_and_the_report_lists_both_groups(
    journey: Journey,
) -> None:
    """Each of 40 young diners earns 100 base points; treated ones earn 50 more from
    young-lifestyle, held-out ones do not. The report counts the same customers in each group
    as the ledger topic shows, with the treated group's campaign points and what the holdout
    would have cost (50 each). Sending everything again, and replaying it through a second
    worker group into the same ledger, changes neither the ledger topic nor the report."""
    journey.start_worker(POINTS_RULES__PATH=RULES)
    _publish(journey)
    earned = journey.read_topic(journey.topics.points_ledger, at_least=len(CUSTOMERS))
    by_customer = {r.json()["customer_id"]: r.json() for r in earned}
    assert sorted(by_customer) == CUSTOMERS
    treated = [c for c, e in by_customer.items() if "young-lifestyle" in e["rule_ids"]]
    held = [c for c, e in by_customer.items() if "young-lifestyle" not in e["rule_ids"]]
    assert all(by_customer[c]["points"] == 150 for c in treated)
    assert all(by_customer[c]["points"] == 100 for c in held)
    assert treated and held  # 20% of 40: both groups have customers

    report = _report(journey)
    assert report["holdout_percent"] == 20
    assert report["treated"]["customers"] == len(treated)
    assert report["holdout"]["customers"] == len(held)
    assert report["treated"]["active_customers"] == len(treated)
    assert report["treated"]["campaign_points"] == 50 * len(treated)
    assert report["holdout"]["campaign_points"] == 50 * len(held)  # would have earned
    assert report["cost_minor"] == 50 * len(treated)
    assert report["treated"]["spend_per_customer_minor"] == 10_000
    assert report["holdout"]["spend_per_customer_minor"] == 10_000
    assert report["incremental_spend_minor"]["estimate"] == 0

    # Replay: the same messages again (producer retries), then every message from the start
    # through a new consumer group writing to the same ledger.
    published = _ledger_messages(journey)
    assert published == len(CUSTOMERS)
    _publish(journey)
    replay_group = f"{journey.app_id}-replay"
    journey.start_worker(POINTS_RULES__PATH=RULES, POINTS_WORKER__APP_ID=replay_group)
    journey.wait_caught_up(
        replay_group, [journey.topics.bank_customers, journey.topics.bank_transactions]
    )
    journey.check_alive()
    assert _report(journey) == report
    # The relay runs every few hundred ms: give a wrongly written outbox row time to show.
    time.sleep(3)
    assert _ledger_messages(journey) == published
