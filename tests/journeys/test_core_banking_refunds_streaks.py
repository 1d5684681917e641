"""Journey: core banking's refunds and the app's late check-ins, against a running worker.

Published with confluent-kafka to the documented topics (docs/architecture.md, the JSON
Schemas under docs/schemas), read back through the operations CLI with ``--json``. The worker
runs the default rule file (rules/default.yaml); every expected figure below is worked out
from docs/rules.md.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.journeys import messages
from tests.journeys.harness import Journey, event_time, iso

pytestmark = pytest.mark.integration

# rules/default.yaml: "timezone: Asia/Shanghai" (days are counted on this calendar)
BEIJING = ZoneInfo("Asia/Shanghai")


def onboarding(customer_id: str, joined_days_ago: float) -> dict[str, Any]:
    return messages.onboarding(customer_id, days_ago=joined_days_ago, segment="affluent",
                               birth_year=1955)  # fmt: skip


def purchase(event_id: str, customer_id: str, amount_minor: int, mcc: str, merchant_id: str,
             days_ago: float) -> dict[str, Any]:  # fmt: skip
    """A card purchase at ``merchant_id`` (a partner's, or any other)."""
    return messages.bank_transaction("purchase", event_id, customer_id, amount_minor, days_ago,
                                     mcc=mcc, merchant_id=merchant_id)  # fmt: skip


def refund(event_id: str, of: dict[str, Any], days_ago: float) -> dict[str, Any]:
    """A full refund of the purchase ``of``."""
    return {
        **of,
        "event_type": "refund",
        "event_id": event_id,
        "original_event_id": of["event_id"],
        "occurred_at": event_time(days_ago=days_ago),
    }


def check_in(event_id: str, customer_id: str, at: datetime) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_type": "check_in",
        "event_id": event_id,
        "customer_id": customer_id,
        "occurred_at": iso(at),
    }


def net_balance(journey: Journey, customer_id: str) -> int:
    found: dict[str, Any] = journey.cli_json("balance", customer_id)
    return int(found["available"]) + int(found["held"]) - int(found["debt"])


def test_a_refund_undoing_a_milestone_reached_on_another_purchase_leaves_what_the_docs_give(
    journey: Journey,
) -> None:
    """Finding 2. A customer who joined 30 days ago (new-customer-double) buys a ride at the
    partner (p8: base 99 + co-brand 198 + first-ride 200 + campaign 99 + first-swipe 100 =
    696) and fuel (p9: 5 + 5 = 10); both are refunded in full. docs/rules.md §4: the second
    refund leaves no purchase, so first-swipe's 100 come back too, from p8's earning: 0 left,
    nothing refused. A later grocery purchase (p10: 100 + 100 + first-swipe 100) is then the
    only purchase: 300. Before the fix the ledger refused the whole second clawback (110 asked
    of p9's 10), the customer kept 110, and p10 paid first-swipe again: 410."""
    worker = journey.start_worker()
    customer = "refund-milestone-1"
    p8 = purchase("p8-rm1", customer, 4_999, "4121", "M-RIDEHAIL-0001", days_ago=3.0)
    p9 = purchase("p9-rm1", customer, 2_790, "5541", "M-FUEL-01", days_ago=2.9)
    p10 = purchase("p10-rm1", customer, 10_000, "5411", "M-GROCER-01", days_ago=0.5)
    with journey.bank_producer(compression="lz4") as bank:
        bank.send(journey.topics.bank_customers, onboarding(customer, joined_days_ago=30))
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_customers])

    with journey.bank_producer(compression="lz4") as bank:
        for message in (p8, p9, refund("r18-rm1", p8, 2.0), refund("r19-rm1", p9, 1.0)):
            bank.send(journey.topics.bank_transactions, message)
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])
    assert net_balance(journey, customer) == 0
    own = journey.cli_json("entry", "show", "clawback:r19-rm1")
    milestone = journey.cli_json("entry", "show", "clawback:r19-rm1#1")
    assert (own["status"], own["amount"]) == ("committed", 10)
    assert (milestone["status"], milestone["amount"]) == ("committed", 100)
    assert milestone["reason"]["rule_ids"] == ["first-swipe"]

    with journey.bank_producer(compression="lz4") as bank:
        bank.send(journey.topics.bank_transactions, p10)
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])
    assert net_balance(journey, customer) == 300
    assert journey.cli_json("verify")["ok"] is True
    assert worker.running


def test_check_ins_for_seven_days_with_day_one_published_after_day_two_earn_the_week(
    journey: Journey,
) -> None:
    """Finding 6. Seven consecutive Beijing days of check-ins; day 1's (23:59:58) is published
    after day 2's (00:00:03, five seconds later in event time). docs/rules.md: streaks follow
    event time within the 72 h lateness window: 7 x daily-checkin 5 + checkin-week 70 = 105.
    Before the fix the streak ended at 6 and the customer got 35."""
    worker = journey.start_worker()
    customer = "late-check-in-1"
    today = datetime.now(UTC).astimezone(BEIJING).date()
    first = today - timedelta(days=7)

    def local(day: date, hour: int, minute: int, second: int) -> datetime:
        return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=BEIJING)

    day_one = check_in("ci-d1-lc1", customer, local(first, 23, 59, 58))
    day_two = check_in("ci-d2-lc1", customer, local(first + timedelta(days=1), 0, 0, 3))
    rest = [
        check_in(f"ci-d{n}-lc1", customer, local(first + timedelta(days=n - 1), 9, 0, 0))
        for n in range(3, 8)
    ]
    with journey.bank_producer(compression="zstd") as app:
        app.send(journey.topics.bank_customers, onboarding(customer, joined_days_ago=400))
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_customers])
    with journey.bank_producer(compression="zstd") as app:
        for message in (day_two, day_one, *rest):
            app.send(journey.topics.customer_activity, message)
    journey.wait_caught_up(journey.worker_group, [journey.topics.customer_activity])
    assert net_balance(journey, customer) == 7 * 5 + 70
    assert worker.running
