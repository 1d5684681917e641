"""Journey: the operations team, with the CLI only (docs/operations.md), after a day of bank
traffic published by librdkafka in every compression codec.

They prove that nothing ended silently (`points-ledger audit`), find the malformed message in
the dead letters with its reason (`dlq list`), and list refusals (`refusals list`) — all with
``--json``, by subprocess, as a runbook script would.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.journeys.harness import Journey, wait_until
from tests.journeys.messages import bank_transaction, profile

pytestmark = pytest.mark.integration

CODECS = ("gzip", "snappy", "lz4", "zstd")


def day(customer_id: str) -> list[dict[str, Any]]:
    """A purchase refunded in full, a refund sent before its purchase, and a purchase kept."""
    c = customer_id
    return [
        bank_transaction("purchase", f"{c}-p1", c, 20_000, 1.0),
        bank_transaction("refund", f"{c}-r1", c, 20_000, 0.9, original_event_id=f"{c}-p1"),
        bank_transaction("refund", f"{c}-r2", c, 5_000, 0.8, original_event_id=f"{c}-p2"),
        bank_transaction("purchase", f"{c}-p2", c, 5_000, 0.85),
        bank_transaction("purchase", f"{c}-p3", c, 12_000, 0.7),
    ]


def test_after_traffic_in_every_codec_the_operator_proves_nothing_ended_silently(
    journey: Journey,
) -> None:
    """Profiles and a day of purchases and refunds (one refund ahead of its purchase) sent
    gzip-, snappy-, lz4- and zstd-compressed, plus one malformed message: `audit --json` exits 0
    with no offenders over every event, `dlq list --json` shows the malformed message with
    reason `invalid_json`, and `refusals list --json` answers (no refusals on this day)."""
    worker = journey.start_worker()
    topics = [journey.topics.bank_customers, journey.topics.bank_transactions]
    for codec in CODECS:
        customer = f"ops-{codec}"
        with journey.bank_producer(compression=codec) as bank:
            bank.send(journey.topics.bank_customers, profile(customer))
            for event in day(customer):
                bank.send(journey.topics.bank_transactions, event)
    with journey.bank_producer(compression="lz4") as bank:
        bank.send_bytes(journey.topics.bank_transactions, b'{"event_type": "purchase",', "ops-x")
    journey.wait_caught_up(journey.worker_group, topics)
    journey.check_alive()

    def audit_clean() -> Any:
        result = journey.cli("--json", "audit")
        return result.json if result.exit_code == 0 else None

    report = wait_until(audit_clean, 60, "a clean audit (the DLQ copy relayed)",
                        lambda: str(journey.cli("--json", "audit")) + worker.log_tail())
    assert report["ok"] is True and report["offenders"] == []
    assert report["events"] == len(CODECS) * 6  # a profile and five transactions each

    letters = journey.cli_json("dlq", "list")["dead_letters"]
    assert [(d["topic"], d["reason_code"]) for d in letters] == [
        (journey.topics.bank_transactions, "invalid_json")]
    assert letters[0]["reason"]

    assert journey.cli_json("refusals", "list") == {"refusals": []}
    balances = {c: journey.cli_json("balance", f"ops-{c}")["available"] for c in CODECS}
    assert len(set(balances.values())) == 1 and balances["lz4"] > 0, balances
