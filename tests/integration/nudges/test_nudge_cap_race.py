"""Two deciders, one customer, one cap: the caps hold when a batch and the timer decide at the
same moment (PostgreSQL, two real connections).

Rule file tests/fixtures/rules-nudges.yaml: at most 1 nudge a day per customer.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from points.db import make_engine
from points.migrate import upgrade
from points.nudges import store as nudge_store
from points.nudges.policy import NudgeCause
from points.nudges.tables import nudges
from points.rules import load_ruleset
from tests.integration.nudges.test_purchase_nudges import RULES, TOPICS

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 17:00 in Asia/Shanghai: outside quiet hours


@pytest.fixture
def pg_engine(fresh_pg_url: str) -> Engine:
    upgrade(fresh_pg_url)
    return make_engine(fresh_pg_url, pool_size=4)


def test_a_second_decider_waits_for_the_first_and_its_nudge_counts_toward_the_cap(
    pg_engine: Engine,
) -> None:
    """The first transaction records a sent nudge for "ann" and has not committed; a second,
    deciding another cause for "ann" on the same local day, waits for it (it does not count
    the caps before the first commits) and then suppresses its own nudge as over the daily cap
    of 1. Without the wait both would count 0 sent and both would send."""
    ruleset = load_ruleset(RULES)
    badge, cross_sell = ruleset.nudges.messages[0], ruleset.nudges.messages[1]
    first = NudgeCause(badge, "ann", "milestone:fifth-purchase", NOW, True, "active", {})
    second = NudgeCause(cross_sell, "ann", "first_partner:eshop", NOW, True, "active", {})

    def record(conn: object, cause: NudgeCause) -> nudge_store.NudgesRecorded:
        return nudge_store.record_nudges(
            conn,  # type: ignore[arg-type]
            ruleset.nudges, ruleset.zone, ruleset.version, [cause],
            topic=TOPICS.customer_nudges, now=NOW,
        )  # fmt: skip

    outcome: dict[str, nudge_store.NudgesRecorded] = {}

    def second_decider() -> None:
        with pg_engine.begin() as conn:
            outcome["second"] = record(conn, second)

    with pg_engine.connect() as conn:
        transaction = conn.begin()
        assert record(conn, first).sent == 1
        racer = threading.Thread(target=second_decider)
        racer.start()
        time.sleep(1.0)
        assert racer.is_alive(), "the second decider did not wait for the first to commit"
        transaction.commit()
    racer.join(timeout=30)
    assert not racer.is_alive()
    assert (outcome["second"].sent, outcome["second"].suppressed) == (0, 1)
    with pg_engine.connect() as conn:
        rows = conn.execute(
            select(nudges.c.nudge, nudges.c.outcome, nudges.c.reason_code)
            .where(nudges.c.customer_id == "ann")
            .order_by(nudges.c.nudge)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("badge-nearly", "sent", None),
        ("try-ridehail", "suppressed", "cap_per_day"),
    ]
