"""Model finding M6: a parked refund and a purchase made before the refund that arrives after it.

A refund that arrives before its purchase waits and is applied right after the purchase
(docs/rules.md §4). Another purchase of the same customer made (event time) between the
purchase and the refund may arrive later still. It must earn what it would have earned had
everything arrived in event-time order: the partner of the refunded first partner purchase
and a milestone the refund took back were still held when it was made. Each stream below is
the shortest one the model check found (seed 20261205, refund_before_purchase on), fed to
two customers through ``EarningService``: one in the arrival order seen, one in event-time
order; both must end with the balance docs/rules.md gives.

Runs on SQLite and PostgreSQL (the ``engine`` fixture).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from points.decoding import RawMessage
from points.earning import EarningService
from points.ledger import customer_balance, verify
from points.rules import load_ruleset
from points.settings import TopicNames

DEFAULT_RULES = Path(__file__).resolve().parents[3] / "rules" / "default.yaml"
TOPICS = TopicNames()
NOW = datetime(2026, 12, 20, tzinfo=UTC)


@pytest.fixture
def service(engine: Engine) -> EarningService:
    return EarningService(engine, load_ruleset(DEFAULT_RULES), TOPICS, clock=lambda: NOW)


def _onboarded(joined_at: str) -> dict[str, Any]:
    return {
        "event_type": "customer_onboarded",
        "event_id": "on-1",
        "segment": "affluent",
        "joined_at": joined_at,
        "birth_year": 1971,
        "occurred_at": joined_at,
    }


def _purchase(event_id: str, amount: int, mcc: str, merchant: str, when: str, **extra: Any) -> Any:
    return {
        "event_type": "purchase",
        "event_id": event_id,
        "amount_minor": amount,
        "currency": "CNY",
        "mcc": mcc,
        "merchant_id": merchant,
        "channel": "card_present",
        "occurred_at": when,
        **extra,
    }


def _refund(event_id: str, original: str, amount: int, when: str) -> dict[str, Any]:
    return {
        "event_type": "refund",
        "event_id": event_id,
        "original_event_id": original,
        "amount_minor": amount,
        "currency": "CNY",
        "mcc": "4121",
        "merchant_id": "M-ANY",
        "channel": "mobile",
        "occurred_at": when,
    }


def _feed(service: EarningService, customer: str, bodies: list[dict[str, Any]]) -> None:
    """Each message in its own batch, as a partition would deliver them one poll apart; event
    ids are made the customer's own (the service drops an event id it has seen)."""
    for offset, body in enumerate(bodies, start=1):
        body = {**body, "event_id": f"{customer}-{body['event_id']}"}
        if "original_event_id" in body:
            body["original_event_id"] = f"{customer}-{body['original_event_id']}"
        topic = (
            TOPICS.bank_customers
            if body["event_type"] == "customer_onboarded"
            else (TOPICS.bank_transactions)
        )
        raw = json.dumps({**body, "customer_id": customer}).encode()
        service.process([RawMessage(topic, 0, offset, customer.encode(), raw)])


def _net(engine: Engine, customer: str) -> int:
    with engine.connect() as conn:
        b = customer_balance(conn, customer, now=NOW)
        report = verify(conn)
    assert report.ok, report.violations
    return b.available + b.held - b.debt


def _arrival_and_event_order(
    service: EarningService, engine: Engine, name: str, arrival: list[dict[str, Any]]
) -> tuple[int, int]:
    in_order = sorted(arrival[1:], key=lambda body: body["occurred_at"])
    _feed(service, f"{name}-arrival", arrival)
    _feed(service, f"{name}-in-order", [arrival[0], *in_order])
    return _net(engine, f"{name}-arrival"), _net(engine, f"{name}-in-order")


def test_a_partner_purchase_made_before_a_parked_refund_does_not_earn_first_partner_again(
    service: EarningService, engine: Engine
) -> None:
    """mv3865: the refund of p3 arrives first; p3 (a ride paid at a non-partner merchant but
    tagged ridehail: first-ride 200) arrives and the refund takes everything back, forgetting
    the partner; p4 (the ridehail merchant, made before the refund) arrives last. It was made
    while ridehail was still known, so it earns no first-ride (and keeps the purchase count at
    1, so first-swipe stays held): both orders end at 120 (base 5 + co-brand 10 +
    new-customer-double 5 + first-swipe 100), not 320 (first-ride paid again)."""
    arrival = [
        _onboarded("2026-09-17T02:59:00+00:00"),
        _refund("r5", "p3", 8947, "2026-10-17T09:22:00+00:00"),
        _purchase(
            "p3", 8947, "4121", "M-OTHER-RIDES", "2026-10-14T13:01:00+00:00",
            partner_id="ridehail", channel="mobile",
        ),
        _purchase(
            "p4", 259, "4121", "M-RIDEHAIL-0001", "2026-10-16T03:01:00+00:00", channel="online"
        ),
    ]  # fmt: skip
    seen, in_order = _arrival_and_event_order(service, engine, "mv3865", arrival)
    assert (seen, in_order) == (120, 120)


def test_a_purchase_made_before_a_parked_refund_restores_the_milestone_it_took_back(
    service: EarningService, engine: Engine
) -> None:
    """mv3169: two partial refunds that together refund p3 in full arrive first; p3 arrives,
    both apply, the purchase count falls to 0 and first-swipe's 100 come back from p3. p5
    (a 8,305.17 CNY flight made before the refunds) arrives last: with it the count never
    fell below 1, so first-swipe is restored (100, outside the caps, as when p3 was paid) and
    p5 earns its own 20,000 (the per-transaction cap): 20,100 in both orders, not 20,000."""
    arrival = [
        _onboarded("2026-02-25T04:29:00+00:00"),
        _refund("r12", "p3", 1915, "2026-09-01T18:19:00+00:00"),
        _refund("r13", "p3", 3085, "2026-09-02T01:02:00+00:00"),
        _purchase("p3", 5000, "4121", "M-TAXI-01", "2026-08-31T01:29:00+00:00", channel="atm"),
        _purchase("p5", 830517, "4511", "M-AIRLINE-0001", "2026-08-31T16:44:00+00:00"),
    ]
    seen, in_order = _arrival_and_event_order(service, engine, "mv3169", arrival)
    assert (seen, in_order) == (20_100, 20_100)
