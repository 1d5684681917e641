"""Issue 12 finding 2: a full refund that undoes a milestone reached on *another* purchase.

With the default rules (rules/default.yaml), docs/rules.md §4: a refund takes back what the
refunded purchase earned and every milestone that no longer holds without it, the milestone's
points from the earning that paid them. The customer ends with what they would hold had the
refunded purchase never happened; a milestone's points are held at most once at any time.
Whatever part of a clawback the ledger refuses is recorded in ``refusals`` and the rest posted.

Runs on SQLite and PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from points.decoding import RawMessage
from points.earning import EarningService
from points.ledger import apply_batch, customer_balance, verify
from points.ledger.model import Reverse
from points.ledger.tables import entries
from points.refusals import refusals
from points.rules import load_ruleset
from points.settings import TopicNames

DEFAULT_RULES = Path(__file__).resolve().parents[3] / "rules" / "default.yaml"
TOPICS = TopicNames()
NOW = datetime(2026, 12, 20, tzinfo=UTC)
CUSTOMER = "mi35"


class Feed:
    """Raw bank.customers / bank.transactions records with increasing offsets."""

    def __init__(self) -> None:
        self.offset = 0

    def _raw(self, topic: str, body: dict[str, Any]) -> RawMessage:
        self.offset += 1
        return RawMessage(topic, 0, self.offset, CUSTOMER.encode(), json.dumps(body).encode())

    def onboarded(self) -> RawMessage:
        return self._raw(
            TOPICS.bank_customers,
            {
                "event_type": "customer_onboarded",
                "event_id": "on-1",
                "customer_id": CUSTOMER,
                "segment": "affluent",
                "joined_at": "2026-10-06T00:33:00+00:00",
                "birth_year": 1955,
                "occurred_at": "2026-10-06T00:33:00+00:00",
            },
        )

    def purchase(
        self, event_id: str, amount: int, mcc: str, merchant: str, when: str
    ) -> RawMessage:
        return self._raw(
            TOPICS.bank_transactions,
            {
                "event_type": "purchase",
                "event_id": event_id,
                "customer_id": CUSTOMER,
                "amount_minor": amount,
                "currency": "CNY",
                "mcc": mcc,
                "merchant_id": merchant,
                "channel": "card_present",
                "occurred_at": when,
            },
        )

    def refund(self, event_id: str, original: str, amount: int, when: str) -> RawMessage:
        return self._raw(
            TOPICS.bank_transactions,
            {
                "event_type": "refund",
                "event_id": event_id,
                "customer_id": CUSTOMER,
                "original_event_id": original,
                "amount_minor": amount,
                "currency": "CNY",
                "mcc": "5411",
                "merchant_id": "M-ANY",
                "channel": "card_present",
                "occurred_at": when,
            },
        )


# p8: a ride at the partner, 49.99 CNY: base 99 + co-brand 198 + first-ride 200
#     + new-customer-double 99 + first-swipe 100 (the first purchase) = 696
# p9: fuel, 27.90 CNY: base 5 + new-customer-double 5 = 10
# p10: groceries, 100.00 CNY: base 100 + new-customer-double 100 (+ first-swipe if due)
P8 = ("p8", 4999, "4121", "M-RIDEHAIL-0001", "2026-10-30T09:09:00+00:00")
P9 = ("p9", 2790, "5541", "M-FUEL-01", "2026-10-30T21:09:00+00:00")
P10 = ("p10", 10000, "5411", "M-GROCER-01", "2026-11-02T03:00:00+00:00")


@pytest.fixture
def service(engine: Engine) -> EarningService:
    return EarningService(engine, load_ruleset(DEFAULT_RULES), TOPICS, clock=lambda: NOW)


def _net(engine: Engine) -> int:
    with engine.connect() as conn:
        b = customer_balance(conn, CUSTOMER, now=NOW)
        report = verify(conn)
    assert report.ok, report.violations
    return b.available + b.held - b.debt


def _refusals(engine: Engine) -> list[tuple[str, str, str, str]]:
    t = refusals
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.dedupe_key, t.c.source, t.c.subject, t.c.reason_code).order_by(t.c.id)
        ).tuples()
        return [tuple(row) for row in rows]


def _rejected_entries(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        query = select(entries.c.idempotency_key).where(entries.c.status == "rejected")
        return list(conn.execute(query).scalars())


def test_refunds_undoing_a_milestone_reached_on_another_purchase_leave_what_the_docs_give(
    service: EarningService, engine: Engine
) -> None:
    """p8 pays first-swipe; p8 refunded: p9 still makes one purchase, the milestone stays;
    p9 refunded: no purchase left, first-swipe's 100 come back from p8's earning (not asked
    of p9's 10). Nothing is refused, the balance is 0, and the next purchase reaches
    first-swipe again: the customer holds it once."""
    feed = Feed()
    service.process([feed.onboarded(), feed.purchase(*P8), feed.purchase(*P9)])
    assert _net(engine) == 696 + 10

    service.process([feed.refund("r18", "p8", 4999, "2026-10-31T03:28:00+00:00")])
    assert _net(engine) == 110  # base, co-brand, first-ride, campaign back; first-swipe held

    outcome = service.process([feed.refund("r19", "p9", 2790, "2026-11-01T12:34:00+00:00")])
    assert outcome.points_clawed_back == 110
    assert _net(engine) == 0
    assert _rejected_entries(engine) == []
    assert _refusals(engine) == []

    service.process([feed.purchase(*P10)])
    assert _net(engine) == 100 + 100 + 100  # as if p8 and p9 had never happened


def test_a_refund_before_its_purchase_takes_the_milestone_from_the_purchase_that_paid_it(
    service: EarningService, engine: Engine
) -> None:
    """The refund of p9 arrives first (parked), then p8 is refunded, then p9 arrives: the
    parked refund applies and takes first-swipe back from p8; all in one batch and in three
    give the same balance."""
    feed = Feed()
    service.process([feed.onboarded(), feed.purchase(*P8)])
    service.process([feed.refund("r19", "p9", 2790, "2026-11-01T12:34:00+00:00")])
    service.process([feed.refund("r18", "p8", 4999, "2026-10-31T03:28:00+00:00")])
    assert _net(engine) == 0  # p8 was the only purchase: everything came back
    service.process([feed.purchase(*P9)])
    # p9 earned 10 + first-swipe 100 (purchase count 1 again); its parked full refund takes
    # all of it back from p9 itself
    assert _net(engine) == 0
    assert _refusals(engine) == []
    service.process([feed.purchase(*P10)])
    assert _net(engine) == 300


def test_a_refused_part_is_recorded_and_the_rest_of_the_clawback_still_posted(
    service: EarningService, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator reversed p8's earning before the refunds. r19's own part (p9's 10) posts;
    the milestone part asked of p8's reversed earning is refused: recorded once in
    ``refusals`` under the refused entry's key (clawback:r19#1: the milestone part; r18's own
    part under clawback:r18), source earning, subject clawback, with one WARNING line."""
    feed = Feed()
    service.process([feed.onboarded(), feed.purchase(*P8), feed.purchase(*P9)])
    with engine.begin() as conn:
        apply_batch(conn, [Reverse("ops-reverse-p8", "earn:p8")], now=NOW)
    assert _net(engine) == 10

    service.process([feed.refund("r18", "p8", 4999, "2026-10-31T03:28:00+00:00")])
    with caplog.at_level("WARNING", logger="points.earning.service"):
        service.process([feed.refund("r19", "p9", 2790, "2026-11-01T12:34:00+00:00")])
    assert _net(engine) == 0  # p9's own 10 came back although p8's part was refused
    assert _refusals(engine) == [
        ("clawback:r18", "earning", "clawback", "already_reversed"),
        ("clawback:r19#1", "earning", "clawback", "already_reversed"),
    ]
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "r19" in r.message]
    assert len(warnings) == 1
    assert "earn:p8" in warnings[0].message
