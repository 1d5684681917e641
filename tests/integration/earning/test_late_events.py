"""Issue 12 finding 6 through the earning service: streaks follow event time, not arrival.

Default rules (rules/default.yaml, Asia/Shanghai days, 72 h lateness window). Runs on SQLite
and PostgreSQL (the ``engine`` fixture); each message is its own batch, so the rule state goes
through the database between events as it does in production.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from points.decoding import RawMessage
from points.earning import EarningService
from points.ledger import customer_balance
from points.refusals import refusals
from points.rules import load_ruleset
from points.settings import TopicNames

DEFAULT_RULES = Path(__file__).resolve().parents[3] / "rules" / "default.yaml"
TOPICS = TopicNames()
NOW = datetime(2026, 12, 20, tzinfo=UTC)


@pytest.fixture
def service(engine: Engine) -> EarningService:
    return EarningService(engine, load_ruleset(DEFAULT_RULES), TOPICS, clock=lambda: NOW)


def _check_in(offset: int, event_id: str, when: str) -> RawMessage:
    body = {
        "event_type": "check_in",
        "event_id": event_id,
        "customer_id": "mv61",
        "occurred_at": when,
    }
    return RawMessage(TOPICS.customer_activity, 0, offset, b"mv61", json.dumps(body).encode())


def _balance(engine: Engine) -> int:
    with engine.connect() as conn:
        return customer_balance(conn, "mv61", now=NOW).available


def test_day_one_arriving_after_day_two_still_earns_the_week_bonus(
    service: EarningService, engine: Engine
) -> None:
    """Day 2 (00:00:03 Beijing) arrives before day 1 (23:59:58 the evening before), then days
    3 to 7: 7 check-ins of 5 points and checkin-week's 70, nothing refused."""
    arrivals = [
        ("ci-2", "2026-11-02T00:00:03+08:00"),
        ("ci-1", "2026-11-01T23:59:58+08:00"),
        *((f"ci-{d}", f"2026-11-0{d}T08:00:00+08:00") for d in range(3, 8)),
    ]
    for offset, (event_id, when) in enumerate(arrivals, start=1):
        service.process([_check_in(offset, event_id, when)])
    assert _balance(engine) == 7 * 5 + 70
    with engine.connect() as conn:
        assert conn.execute(select(refusals.c.dedupe_key)).all() == []


def test_a_check_in_older_than_the_window_is_recorded_as_too_late(
    service: EarningService, engine: Engine
) -> None:
    """Days 2 to 9 in order, then day 1, eight days late: it still earns its 5 (its day's
    counters are kept) but the streak is decided without it; the refusal says so, once,
    even when the message is consumed again."""
    for d in range(2, 10):
        service.process([_check_in(d, f"ci-{d}", f"2026-11-0{d}T08:00:00+08:00")])
    late = _check_in(20, "ci-1", "2026-11-01T08:00:00+08:00")
    service.process([late])
    service.process([late])  # a redelivery changes nothing
    assert _balance(engine) == 9 * 5 + 70  # days 2..8 made the week; day 1 counted no more
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                refusals.c.dedupe_key,
                refusals.c.source,
                refusals.c.subject,
                refusals.c.reason_code,
                refusals.c.customer_id,
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("late:ci-1", "earning", "late_event", "beyond_lateness_window", "mv61")
    ]
