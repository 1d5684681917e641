"""Time-based nudges from the timer's rounds, with no incoming event, on SQLite and PostgreSQL.

tests/fixtures/rules-nudges.yaml (Asia/Shanghai): a daily check-in streak nudged when today has
not counted by 20:00 local; points expiring within 7 days; caps 1 a day, 2 a week.
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
from points.outbox import outbox_table
from points.rules import load_ruleset
from points.settings import TopicNames

RULES = Path(__file__).resolve().parents[2] / "fixtures" / "rules-nudges.yaml"
TOPICS = TopicNames()
EVENING = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)  # 20:30 in Shanghai
AFTERNOON = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai


def raw(offset: int, topic: str, body: dict[str, Any]) -> RawMessage:
    return RawMessage(topic, 0, offset, str(body["customer_id"]).encode(),
                      json.dumps(body).encode())


def seed(engine: Engine) -> None:
    """sam checked in yesterday (not today), tom today, una yesterday without consent; vic
    earned points on the 25th that expire on the 30th (lots live 5 days for that purchase;
    the check-ins' points live a year)."""
    ruleset = load_ruleset(RULES)
    service = EarningService(engine, ruleset, TOPICS, clock=lambda: AFTERNOON)
    short_lived = EarningService(engine, ruleset, TOPICS, lot_lifetime_days=5,
                                 clock=lambda: AFTERNOON)
    messages = []
    for n, (customer, consent) in enumerate(
        [("sam", True), ("tom", True), ("una", False), ("vic", True)]
    ):
        messages.append(raw(n, TOPICS.bank_customers, {
            "event_type": "customer_profile", "event_id": f"p-{customer}",
            "customer_id": customer, "segment": "mass", "status": "active",
            "joined_at": "2025-01-01T00:00:00+00:00", "marketing_consent": consent,
            "occurred_at": "2026-11-01T00:00:00+00:00",
        }))
    for n, (customer, day) in enumerate(
        [("sam", "2026-11-26"), ("tom", "2026-11-26"), ("tom", "2026-11-27"),
         ("una", "2026-11-26")]
    ):
        messages.append(raw(10 + n, TOPICS.customer_activity, {
            "event_type": "check_in", "event_id": f"c-{customer}-{day}", "customer_id": customer,
            "occurred_at": f"{day}T04:00:00+00:00",
        }))
    service.process(messages)
    short_lived.process([raw(20, TOPICS.bank_transactions, {
        "event_type": "purchase", "event_id": "v1", "customer_id": "vic",
        "amount_minor": 30_000, "currency": "CNY", "mcc": "5411", "merchant_id": "m-1",
        "channel": "card_present", "occurred_at": "2026-11-25T04:00:00+00:00",
    })])


def decided(engine: Engine) -> list[tuple[str, str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(nudges.c.customer_id, nudges.c.nudge, nudges.c.outcome, nudges.c.reason_code)
            .order_by(nudges.c.customer_id, nudges.c.nudge)
        ).all()
    return [tuple(row) for row in rows]


def queued(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        values = conn.execute(
            select(outbox_table.c.message_value)
            .where(outbox_table.c.topic == TOPICS.customer_nudges)
            .order_by(outbox_table.c.id)
        ).scalars()
        return [json.loads(value) for value in values]


def timer(engine: Engine, at: datetime) -> NudgeTimer:
    return NudgeTimer(engine, load_ruleset(RULES), TOPICS.customer_nudges, clock=lambda: at)


def test_before_the_hour_no_streak_nudge_after_it_one_per_customer_at_risk(engine: Engine) -> None:
    """At 18:00 local only the expiry nudge goes out; at 20:30 sam (yesterday, not today) gets
    the streak nudge, tom (checked in today) none, una none (no consent: suppressed)."""
    seed(engine)
    timer(engine, AFTERNOON).run_once()
    assert decided(engine) == [("vic", "use-them", "sent", None)]
    vic = queued(engine)[0]
    assert vic["data"] == {"points": 300, "expires_on": "2026-11-30", "within_days": 7}

    done = timer(engine, EVENING).run_once()
    assert (done.sent, done.suppressed) == (1, 1)
    assert decided(engine) == [
        ("sam", "keep-the-streak", "sent", None),
        ("una", "keep-the-streak", "suppressed", "no_consent"),
        ("vic", "use-them", "sent", None),
    ]
    sam = [m for m in queued(engine) if m["customer_id"] == "sam"]
    assert [(m["cause"], m["data"]["length"]) for m in sam] == [
        ("streak:daily-checkin-streak:2026-11-27", 1)
    ]


def test_rounds_again_restarts_and_a_second_timer_send_nothing_twice(engine: Engine) -> None:
    """The same round again in one timer (skipped), in a new timer (a restart, or another
    worker's leader): the nudges decided stay as they were, nothing more is queued."""
    seed(engine)
    first = timer(engine, EVENING)
    first.run_once()
    before = (decided(engine), queued(engine))
    again = first.run_once()
    # the expiry scan is done for the day; the streak and stage rescans are not due yet
    assert again.skipped == 3 and (again.sent, again.suppressed) == (0, 0)
    restarted = timer(engine, EVENING).run_once()
    other = timer(engine, EVENING).run_once()
    assert (restarted.sent, restarted.suppressed, other.sent, other.suppressed) == (0, 0, 0, 0)
    assert (decided(engine), queued(engine)) == before
    assert len(before[1]) == 2


def test_a_later_round_finds_a_streak_put_at_risk_after_the_first(engine: Engine) -> None:
    """The day's first round runs before any check-in arrived and finds nothing; the check-ins
    arrive (late, yesterday's); a round 5 minutes later is too soon to look again (the rescan
    is every 10 minutes by default), the one 11 minutes after the first finds sam."""
    clock = [EVENING]
    early = NudgeTimer(engine, load_ruleset(RULES), TOPICS.customer_nudges, clock=lambda: clock[0])
    assert (early.run_once().sent, len(decided(engine))) == (0, 0)
    seed(engine)
    clock[0] = EVENING + timedelta(minutes=5)
    early.run_once()
    assert ("sam", "keep-the-streak", "sent", None) not in decided(engine)
    clock[0] = EVENING + timedelta(minutes=11)
    early.run_once()
    assert ("sam", "keep-the-streak", "sent", None) in decided(engine)
