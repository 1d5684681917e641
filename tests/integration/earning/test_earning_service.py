"""The earning pipeline's database side on SQLite and PostgreSQL, fed raw messages directly.

Awards follow tests/fixtures/rules-simple.yaml: 1 point per yuan, 100 points and a badge for
the first purchase, 5 points for the first check-in of a day.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from points.earning import EarningService
from points.ingest import RawMessage
from points.intake import dead_letters, outbox
from points.ledger import customer_balance, verify
from points.ledger.tables import entries
from points.rules import load_ruleset
from points.settings import TopicNames

RULES = Path(__file__).resolve().parents[2] / "fixtures" / "rules-simple.yaml"
TOPICS = TopicNames()
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Feed:
    """Builds raw Kafka records with increasing offsets, as a partition would deliver them."""

    def __init__(self) -> None:
        self.offset = 0

    def raw(self, topic: str, body: dict[str, Any] | bytes, key: str | None = None) -> RawMessage:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        customer = key if key is not None else str(body["customer_id"])  # type: ignore[index]
        self.offset += 1
        return RawMessage(topic, 0, self.offset, customer.encode(), value)

    def purchase(self, event_id: str, customer: str, amount_minor: int) -> RawMessage:
        return self.raw(
            TOPICS.bank_transactions,
            {
                "event_type": "purchase",
                "event_id": event_id,
                "customer_id": customer,
                "amount_minor": amount_minor,
                "currency": "CNY",
                "mcc": "5411",
                "merchant_id": "m-1",
                "channel": "card_present",
                "occurred_at": "2026-11-27T09:00:00+00:00",
            },
        )

    def refund(self, event_id: str, customer: str, original: str, amount_minor: int) -> RawMessage:
        return self.raw(
            TOPICS.bank_transactions,
            {
                "event_type": "refund",
                "event_id": event_id,
                "customer_id": customer,
                "original_event_id": original,
                "amount_minor": amount_minor,
                "currency": "CNY",
                "mcc": "5411",
                "merchant_id": "m-1",
                "channel": "card_present",
                "occurred_at": "2026-11-27T10:00:00+00:00",
            },
        )

    def check_in(self, event_id: str, customer: str, hour: int = 8) -> RawMessage:
        return self.raw(
            TOPICS.customer_activity,
            {
                "event_type": "check_in",
                "event_id": event_id,
                "customer_id": customer,
                "occurred_at": f"2026-11-27T{hour:02d}:00:00+00:00",
            },
        )


@pytest.fixture
def service(engine: Engine) -> EarningService:
    return EarningService(engine, load_ruleset(RULES), TOPICS, clock=lambda: NOW)


def balance(engine: Engine, customer: str) -> tuple[int, int]:
    with engine.connect() as conn:
        b = customer_balance(conn, customer, now=NOW)
    return b.available, b.debt


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def assert_verified(engine: Engine) -> None:
    with engine.connect() as conn:
        report = verify(conn)
    assert report.ok, report.violations


def test_a_purchase_earns_base_points_and_the_first_purchase_bonus(
    service: EarningService, engine: Engine
) -> None:
    """123.45 yuan → 123 base points (rounded down) + 100 for the first purchase."""
    feed = Feed()
    outcome = service.process([feed.purchase("p1", "alice", 12_345)])
    assert (outcome.stored, outcome.points_earned) == (1, 223)
    assert balance(engine, "alice") == (223, 0)
    assert_verified(engine)


def test_replaying_a_batch_changes_nothing(service: EarningService, engine: Engine) -> None:
    """The same messages again (a crash before the offset commit) add no entry and no point."""
    feed = Feed()
    batch = [feed.purchase("p1", "alice", 10_000), feed.check_in("c1", "alice")]
    service.process(batch)
    entries_before = count(engine, entries)
    outcome = service.process(batch)
    assert (outcome.stored, outcome.duplicates, outcome.points_earned) == (0, 2, 0)
    assert count(engine, entries) == entries_before
    assert balance(engine, "alice") == (205, 0)


def test_check_ins_are_capped_per_day(service: EarningService, engine: Engine) -> None:
    """Three check-ins on one day earn 5 points once; the rule state carries the cap."""
    feed = Feed()
    service.process([feed.check_in("c1", "bob", 8), feed.check_in("c2", "bob", 9)])
    service.process([feed.check_in("c3", "bob", 10)])
    assert balance(engine, "bob") == (5, 0)


def test_a_full_refund_claws_back_the_base_points_and_the_first_purchase_bonus(
    service: EarningService, engine: Engine
) -> None:
    """Refunding everything takes back all 150 points the purchase earned."""
    feed = Feed()
    service.process([feed.purchase("p1", "carol", 5_000)])
    outcome = service.process([feed.refund("r1", "carol", "p1", 5_000)])
    assert outcome.points_clawed_back == 150
    assert balance(engine, "carol") == (0, 0)
    assert_verified(engine)


def test_a_partial_refund_claws_back_in_proportion_rounding_for_the_bank(
    service: EarningService, engine: Engine
) -> None:
    """Half of 123 base points, rounded up, is 62; the first-purchase bonus stays."""
    feed = Feed()
    service.process([feed.purchase("p1", "dan", 12_300)])
    service.process([feed.refund("r1", "dan", "p1", 6_150)])
    assert balance(engine, "dan") == (223 - 62, 0)


def test_a_refund_of_spent_points_becomes_debt_that_later_earnings_pay_down(
    service: EarningService, engine: Engine
) -> None:
    """Points already spent cannot be taken from the wallet: the rest is receivable debt."""
    from points.ledger import Spend, apply_batch

    feed = Feed()
    service.process([feed.purchase("p1", "erin", 10_000)])  # 200 points
    with engine.begin() as conn:
        apply_batch(conn, [Spend("spend-1", "erin", 180)], now=NOW)
    service.process([feed.refund("r1", "erin", "p1", 10_000)])
    assert balance(engine, "erin") == (0, 180)
    # 300 points + 100: the refund took the first-purchase milestone back, so it is earned
    # again; the first 180 of the 400 pay the debt.
    service.process([feed.purchase("p2", "erin", 30_000)])
    assert balance(engine, "erin") == (220, 0)
    assert_verified(engine)


def test_a_refund_that_arrives_before_its_purchase_is_parked_then_applied(
    service: EarningService, engine: Engine
) -> None:
    """Out of order: the refund waits; when the purchase arrives both apply, net zero."""
    feed = Feed()
    outcome = service.process([feed.refund("r1", "fay", "p1", 8_000)])
    assert outcome.parked == 1
    assert balance(engine, "fay") == (0, 0)
    outcome = service.process([feed.purchase("p1", "fay", 8_000)])
    assert (outcome.points_earned, outcome.points_clawed_back) == (180, 180)
    assert balance(engine, "fay") == (0, 0)


def test_a_refund_before_its_purchase_in_the_same_batch_is_applied_after_it(
    service: EarningService, engine: Engine
) -> None:
    """Out of order inside one batch: the purchase earns, then the waiting refund claws back."""
    feed = Feed()
    outcome = service.process(
        [feed.refund("r1", "fay", "p1", 4_000), feed.purchase("p1", "fay", 8_000)]
    )
    assert (outcome.points_earned, outcome.points_clawed_back) == (180, 40)
    assert balance(engine, "fay") == (140, 0)
    again = service.process([feed.purchase("p2", "fay", 100)])
    assert again.points_clawed_back == 0, "the refund must not stay parked and apply twice"


def test_bad_input_is_dead_lettered_with_a_reason_and_moves_nothing(
    service: EarningService, engine: Engine
) -> None:
    """A malformed message and a refund of another customer's purchase go to the DLQ."""
    feed = Feed()
    service.process([feed.purchase("p1", "gus", 10_000)])
    outcome = service.process(
        [
            feed.raw(TOPICS.bank_transactions, b"{oops", key="gus"),
            feed.refund("r1", "hal", "p1", 10_000),
        ]
    )
    assert outcome.rejected == 2
    assert set(outcome.rejected_reasons) == {"invalid_json", "refund_mismatch"}
    assert count(engine, dead_letters) == 2
    assert balance(engine, "gus") == (200, 0)
    assert balance(engine, "hal") == (0, 0)


def test_every_committed_entry_is_announced_once_on_points_ledger(
    service: EarningService, engine: Engine
) -> None:
    """Each entry queues one points.ledger message; a replay queues none."""
    feed = Feed()
    batch = [feed.purchase("p1", "ivy", 10_000), feed.check_in("c1", "ivy")]
    service.process(batch)
    service.process(batch)
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(outbox.c.message_value).where(outbox.c.topic == TOPICS.points_ledger)
            )
            .scalars()
            .all()
        )
    bodies = sorted((json.loads(r)["entry_key"], json.loads(r)["points"]) for r in rows)
    assert bodies == [("earn:c1", 5), ("earn:p1", 200)]
