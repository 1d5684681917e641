"""Event-triggered nudges through the earning service, on SQLite and PostgreSQL.

Rule file tests/fixtures/rules-nudges.yaml (Asia/Shanghai): a badge at the 5th purchase,
nudged when 2 short; the first eshop purchase cross-sells ridehail; caps 1 a day, 2 a week;
quiet 22:00-08:00 local. Purchases here happen at 09:00 UTC = 17:00 local unless said.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from points.decoding import RawMessage
from points.earning import EarningService
from points.nudges import store as nudge_store
from points.nudges.policy import NudgeCause
from points.nudges.tables import nudges
from points.outbox import outbox_table
from points.rules import load_ruleset
from points.settings import TopicNames

RULES = Path(__file__).resolve().parents[2] / "fixtures" / "rules-nudges.yaml"
TOPICS = TopicNames()
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Feed:
    def __init__(self) -> None:
        self.offset = 0

    def raw(self, topic: str, body: dict[str, Any]) -> RawMessage:
        self.offset += 1
        key = str(body["customer_id"]).encode()
        return RawMessage(topic, 0, self.offset, key, json.dumps(body).encode())

    def profile(self, customer: str, consent: bool | None) -> RawMessage:
        body: dict[str, Any] = {
            "event_type": "customer_profile",
            "event_id": f"prof-{customer}-{self.offset}",
            "customer_id": customer,
            "segment": "mass",
            "joined_at": "2025-01-01T00:00:00+00:00",
            "status": "active",
            "occurred_at": "2026-11-01T00:00:00+00:00",
        }
        if consent is not None:
            body["marketing_consent"] = consent
        return self.raw(TOPICS.bank_customers, body)

    def purchase(
        self, event_id: str, customer: str, merchant: str = "m-1", at: str = "09:00",
        day: str = "2026-11-27",
    ) -> RawMessage:
        return self.raw(
            TOPICS.bank_transactions,
            {
                "event_type": "purchase",
                "event_id": event_id,
                "customer_id": customer,
                "amount_minor": 10_000,
                "currency": "CNY",
                "mcc": "5411",
                "merchant_id": merchant,
                "channel": "card_present",
                "occurred_at": f"{day}T{at}:00+00:00",
            },
        )


@pytest.fixture
def service(engine: Engine) -> EarningService:
    return EarningService(engine, load_ruleset(RULES), TOPICS, clock=lambda: NOW)


def nudge_rows(engine: Engine, customer: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(nudges).where(nudges.c.customer_id == customer).order_by(nudges.c.triggered_at)
        ).mappings()
        return [dict(row) for row in rows]


def queued(engine: Engine, customer: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        values = conn.execute(
            select(outbox_table.c.message_value).where(
                outbox_table.c.topic == TOPICS.customer_nudges,
                outbox_table.c.message_key == customer.encode(),
            )
        ).scalars()
        return [json.loads(value) for value in values]


def test_three_purchases_queue_one_badge_nudge_and_a_replay_queues_nothing(
    service: EarningService, engine: Engine
) -> None:
    """The 3rd purchase leaves the customer 2 short of the 5-purchase badge: one nudge is
    recorded as sent and queued on customer.nudges, keyed by the customer; the 4th purchase
    triggers nothing; the same batches again change nothing."""
    feed = Feed()
    first = [feed.profile("ann", True), *(feed.purchase(f"a{i}", "ann") for i in range(3))]
    second = [feed.purchase("a3", "ann", day="2026-11-28")]
    outcome = service.process(first)
    assert (outcome.nudges_sent, outcome.nudges_suppressed) == (1, 0)
    service.process(second)
    rows = nudge_rows(engine, "ann")
    assert [(r["nudge"], r["outcome"], r["cause"]) for r in rows] == [
        ("badge-nearly", "sent", "milestone:fifth-purchase")
    ]
    messages = queued(engine, "ann")
    assert len(messages) == 1
    message = messages[0]
    assert message["kind"] == "milestone_near"
    assert message["data"] == {"target": "fifth-purchase", "remaining": 2, "badge": "regular",
                               "points": 50}
    assert message["template"] == "badge_nearly_v1"
    assert message["local_day"] == "2026-11-27"
    assert message["nudge_id"] == rows[0]["nudge_id"]

    again = service.process(first + second)
    assert (again.stored, again.nudges_sent, again.nudges_suppressed) == (0, 0, 0)
    assert len(nudge_rows(engine, "ann")) == 1
    assert len(queued(engine, "ann")) == 1


def test_a_second_cause_the_same_day_is_suppressed_by_the_daily_cap(
    service: EarningService, engine: Engine
) -> None:
    """The badge nudge is sent; the same day's first eshop purchase would cross-sell
    ridehail, but the cap is 1 a day: it is recorded as suppressed (cap_per_day), not queued.
    The next day's ... nothing else is owed: the cause was decided once."""
    feed = Feed()
    service.process([feed.profile("ben", True), *(feed.purchase(f"b{i}", "ben") for i in range(3))])
    outcome = service.process([feed.purchase("b-eshop", "ben", merchant="m-eshop", at="10:00")])
    assert (outcome.nudges_sent, outcome.nudges_suppressed) == (0, 1)
    rows = nudge_rows(engine, "ben")
    assert [(r["nudge"], r["outcome"], r["reason_code"]) for r in rows] == [
        ("badge-nearly", "sent", None),
        ("try-ridehail", "suppressed", "cap_per_day"),
    ]
    assert "cap 1 a day" in rows[1]["reason"]
    assert [m["nudge"] for m in queued(engine, "ben")] == ["badge-nearly"]


def test_a_customer_without_consent_gets_no_nudge_and_the_suppression_is_recorded(
    service: EarningService, engine: Engine
) -> None:
    """A profile with marketing_consent false, and one that says nothing, both get none."""
    feed = Feed()
    service.process([
        feed.profile("cat", False), feed.profile("dov", None),
        *(feed.purchase(f"c{i}", "cat") for i in range(3)),
        *(feed.purchase(f"d{i}", "dov") for i in range(3)),
    ])
    for customer in ("cat", "dov"):
        rows = nudge_rows(engine, customer)
        assert [(r["outcome"], r["reason_code"]) for r in rows] == [("suppressed", "no_consent")]
        assert queued(engine, customer) == []


def test_quiet_hours_suppress_by_the_events_local_time(
    service: EarningService, engine: Engine
) -> None:
    """A third purchase at 15:00 UTC is 23:00 in Shanghai, inside 22:00-08:00: suppressed."""
    feed = Feed()
    service.process([feed.profile("eve", True), *(feed.purchase(f"e{i}", "eve") for i in range(2))])
    service.process([feed.purchase("e2", "eve", at="15:00")])
    rows = nudge_rows(engine, "eve")
    assert [(r["outcome"], r["reason_code"]) for r in rows] == [("suppressed", "quiet_hours")]
    assert "23:00" in rows[0]["reason"]
    assert queued(engine, "eve") == []


def test_the_first_eshop_purchase_cross_sells_ridehail_once(
    service: EarningService, engine: Engine
) -> None:
    """First eshop purchase: one try-ridehail nudge carrying its offer; a second eshop purchase
    (another day) triggers nothing more."""
    feed = Feed()
    service.process([feed.profile("fay", True), feed.purchase("f0", "fay", merchant="m-eshop")])
    service.process([feed.purchase("f1", "fay", merchant="m-eshop", day="2026-11-29")])
    messages = queued(engine, "fay")
    assert [(m["nudge"], m["offer_id"], m["data"]) for m in messages] == [
        ("try-ridehail", "ride-welcome-10", {"partner": "eshop", "suggest": "ridehail"})
    ]


def test_a_cause_another_writer_recorded_first_keeps_that_decision(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If another transaction (the timer, say) recorded a nudge id as suppressed between this
    one's look-up and its insert, this one queues nothing for it: the row and the topic agree."""
    ruleset = load_ruleset(RULES)
    nudge = ruleset.nudges.messages[0]
    cause = NudgeCause(nudge, "zed", "milestone:fifth-purchase", NOW, True, "active", {})
    with engine.begin() as conn:
        conn.execute(nudges.insert().values(
            nudge_id=cause.nudge_id, nudge=nudge.id, kind=nudge.kind, customer_id="zed",
            cause=cause.cause, outcome="suppressed", reason_code="cap_per_day", reason="r",
            local_day=date(2026, 11, 27), triggered_at=NOW, decided_at=NOW,
            template=nudge.template, message={},
        ))
    # the look-up ran before the other writer committed
    monkeypatch.setattr(nudge_store, "decided_ids", lambda conn, ids: set())
    with engine.begin() as conn:
        recorded = nudge_store.record_nudges(
            conn, ruleset.nudges, ruleset.zone, ruleset.version, [cause],
            topic=TOPICS.customer_nudges, now=NOW,
        )
    assert (recorded.sent, recorded.suppressed) == (0, 0)
    assert queued(engine, "zed") == []
    assert [r["outcome"] for r in nudge_rows(engine, "zed")] == ["suppressed"]
