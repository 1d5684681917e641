"""Win-back nudges (lifecycle_at_risk) on SQLite and PostgreSQL, found by the timer (judged as
of today: a stage falls into at_risk only as days pass); one per quiet spell.

tests/fixtures/rules-nudges.yaml, default lifecycle thresholds (docs/rules.md, "Behaviour
profile"): at risk when purchases in the last 30 days fall below half of the customer's own
30-day baseline (days 31-90), with at least 2 purchases in the baseline, and the last purchase
less than 60 days ago.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from points.decoding import RawMessage
from points.earning import EarningService
from points.nudges.tables import nudges
from points.nudges.timers import NudgeTimer
from points.rules import load_ruleset
from points.settings import TopicNames

RULES = Path(__file__).resolve().parents[2] / "fixtures" / "rules-nudges.yaml"
TOPICS = TopicNames()
TODAY = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


class Feed:
    def __init__(self) -> None:
        self.offset = 0

    def raw(self, topic: str, body: dict[str, Any]) -> RawMessage:
        self.offset += 1
        return RawMessage(topic, 0, self.offset, str(body["customer_id"]).encode(),
                          json.dumps(body).encode())

    def profile(self, customer: str) -> RawMessage:
        return self.raw(TOPICS.bank_customers, {
            "event_type": "customer_profile", "event_id": f"p-{customer}",
            "customer_id": customer, "segment": "mass", "status": "active",
            "joined_at": "2025-01-01T00:00:00+00:00", "marketing_consent": True,
            "occurred_at": "2025-01-01T00:00:00+00:00",
        })

    def purchases(self, customer: str, days_ago: list[int]) -> list[RawMessage]:
        return [self.raw(TOPICS.bank_transactions, {
            "event_type": "purchase", "event_id": f"{customer}-{n}", "customer_id": customer,
            "amount_minor": 5_000, "currency": "CNY", "mcc": "5411", "merchant_id": "m-1",
            "channel": "card_present",
            "occurred_at": (TODAY - timedelta(days=n)).isoformat(),
        }) for n in days_ago]


def win_backs(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(nudges.c.customer_id, nudges.c.cause, nudges.c.outcome)
            .where(nudges.c.kind == "lifecycle_at_risk").order_by(nudges.c.customer_id)
        ).all()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_the_timer_finds_customers_at_risk_today_once_per_quiet_spell(engine: Engine) -> None:
    """wes bought 80, 70, 60, 50 and 45 days ago, then once today: one purchase in 30 days
    against five in the 60 before: at risk. xia bought 80 to 40 days ago and nothing since:
    at risk today too. The earning batch decides no win-back itself; the timer's round sends
    one to each, the cause named by the customer's newest event day. A round the next day,
    a new timer (a restart) and a replay of the events add nothing."""
    feed = Feed()
    batch = [feed.profile("wes"), feed.profile("xia"),
             *feed.purchases("wes", [80, 70, 60, 50, 45, 0]),
             *feed.purchases("xia", [80, 70, 60, 50, 40])]
    ruleset = load_ruleset(RULES)
    service = EarningService(engine, ruleset, TOPICS, clock=lambda: TODAY)
    service.process(batch)
    assert win_backs(engine) == []

    evening = TODAY + timedelta(hours=8)  # 20:00 in Shanghai
    timer = NudgeTimer(engine, ruleset, TOPICS.customer_nudges, clock=lambda: evening)
    timer.run_once()
    xia_day = (TODAY - timedelta(days=40)).astimezone(ruleset.zone).date()
    expected = [
        ("wes", "lifecycle:at_risk:2026-11-27", "sent"),
        ("xia", f"lifecycle:at_risk:{xia_day.isoformat()}", "sent"),
    ]
    assert win_backs(engine) == expected
    tomorrow = evening + timedelta(days=1)
    NudgeTimer(engine, ruleset, TOPICS.customer_nudges, clock=lambda: tomorrow).run_once()
    timer.run_once()
    service.process(batch)
    assert win_backs(engine) == expected
