"""Journey: the core-banking team, publishing with librdkafka as docs/architecture.md and the
JSON Schemas under docs/schemas describe, against a running earning worker.

They use confluent-kafka with idempotence on and whichever compression their platform
standardised on; they read what happened through the operations CLI and the points.dlq topic.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.journeys.harness import Journey
from tests.journeys.messages import bank_transaction, onboarding

pytestmark = pytest.mark.integration

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def purchase(event_id: str, customer_id: str, amount_minor: int, mcc: str,
             days_ago: float) -> dict[str, Any]:  # fmt: skip
    return bank_transaction("purchase", event_id, customer_id, amount_minor, days_ago, mcc=mcc)


def day_of_purchases(customer_id: str) -> list[dict[str, Any]]:
    """The same small day for every customer: groceries, dining, a large fuel purchase."""
    return [
        purchase(f"{customer_id}-p1", customer_id, 12_345, "5411", 1.0),
        purchase(f"{customer_id}-p2", customer_id, 8_850, "5812", 0.9),
        purchase(f"{customer_id}-p3", customer_id, 250_000, "5541", 0.8),
    ]


def onboard(journey: Journey, customers: list[str]) -> None:
    """Core banking onboards the customers, and their profiles are consumed, before any of
    their card traffic (as at a real bank, where an account exists before its first swipe)."""
    with journey.bank_producer() as bank:
        for customer in customers:
            bank.send(journey.topics.bank_customers, onboarding(customer))
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_customers])


def balance(journey: Journey, customer_id: str) -> dict[str, Any]:
    result: dict[str, Any] = journey.cli_json("balance", customer_id)
    return result


def test_every_compression_codec_earns_points_and_nothing_is_dead_lettered(
    journey: Journey,
) -> None:
    """Batches compressed with each codec Kafka supports (gzip, snappy, lz4, zstd, and none)
    by an idempotent librdkafka producer are all consumed: every customer, whatever codec
    carried their day, ends with the same balance, the worker keeps running, and nothing
    reaches points.dlq. (Finding 1: lz4 batches crashed every worker for good.)"""
    worker = journey.start_worker()
    onboard(journey, [f"cust-{codec}" for codec in CODECS])
    for codec in CODECS:
        with journey.bank_producer(compression=codec) as bank:
            for message in day_of_purchases(f"cust-{codec}"):
                bank.send(journey.topics.bank_transactions, message)
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])
    assert worker.running, worker.log_tail()

    balances = {codec: balance(journey, f"cust-{codec}")["available"] for codec in CODECS}
    assert balances["none"] > 0, balances
    assert set(balances.values()) == {balances["none"]}, balances

    dead = journey.cli_json("dlq", "list")
    assert dead_letter_count(dead) == 0, dead


def dead_letter_count(listing: Any) -> int:
    """``points-ledger --json dlq list`` (docs/operations.md): ``{"dead_letters": [...]}``."""
    return len(listing["dead_letters"])


def test_a_redelivered_day_pays_once_and_malformed_input_is_dead_lettered_with_a_reason(
    journey: Journey,
) -> None:
    """A producer that re-sends its whole day (a retry after a timeout, same event ids) pays
    nothing twice: the customer ends exactly where a control customer with the same day sent
    once ends. A message that is not JSON and one that breaks the contract each reach points.dlq
    with a reason code and the original bytes, and the purchase behind them still earns."""
    worker = journey.start_worker()
    onboard(journey, ["cust-replay", "cust-control"])
    late = {c: purchase(f"{c}-p4", c, 10_000, "5411", 0.1) for c in ("cust-replay", "cust-control")}
    with journey.bank_producer(compression="lz4") as bank:
        for customer in ("cust-replay", "cust-control"):
            for message in day_of_purchases(customer):
                bank.send(journey.topics.bank_transactions, message)
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])

    broken = purchase("bad-contract-1", "cust-replay", -5, "5411", 0.5)  # negative amount
    with journey.bank_producer(compression="zstd") as bank:
        for message in day_of_purchases("cust-replay"):  # the whole day again
            bank.send(journey.topics.bank_transactions, message)
        bank.send_bytes(journey.topics.bank_transactions, b"{not json", key="cust-replay")
        bank.send(journey.topics.bank_transactions, broken)
        for message in late.values():
            bank.send(journey.topics.bank_transactions, message)
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])
    assert worker.running, worker.log_tail()

    replayed, control = (balance(journey, c) for c in ("cust-replay", "cust-control"))
    assert replayed["available"] > 0
    for figure in ("available", "held", "debt", "expiring_30d", "expiring_90d"):
        assert replayed[figure] == control[figure], (figure, replayed, control)

    dlq = journey.read_topic(journey.topics.points_dlq, at_least=2, timeout_s=60)
    reasons = {r.header("dlq.reason_code") for r in dlq}
    assert {"invalid_json", "contract_violation"} <= reasons, reasons
    assert any(r.value == b"{not json" for r in dlq), "the original bytes are not in the DLQ"
    assert dead_letter_count(journey.cli_json("dlq", "list")) == 2
