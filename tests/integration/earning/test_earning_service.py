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

from points.dead_letters import dead_letters
from points.decoding import RawMessage
from points.earning import EarningService, store
from points.ledger import customer_balance, verify
from points.ledger.tables import entries
from points.outbox import OutboxStore
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
        if key is None:
            assert isinstance(body, dict), "a body given as bytes needs its key"
            key = str(body["customer_id"])
        self.offset += 1
        return RawMessage(topic, 0, self.offset, key.encode(), value)

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


def test_replays_and_duplicates_do_not_count_twice_in_the_behaviour_profile(
    service: EarningService, engine: Engine
) -> None:
    """The behaviour profile is written with the points, so the inbox that makes the points
    exactly once makes it exactly once too: the batch again (same worker), inside a later
    batch (a producer duplicate), and through a restarted worker (nothing held in memory)
    leave the stored profile as the first processing wrote it."""
    feed = Feed()
    batch = [feed.purchase("p1", "alice", 10_000), feed.purchase("p2", "alice", 4_000),
             feed.refund("r1", "alice", "p1", 2_500), feed.check_in("c1", "alice")]
    service.process(batch)

    def stored() -> dict[str, Any]:
        with engine.connect() as conn:
            state, _ = store.load_states_versioned(conn, ["alice"])["alice"]
        return dict(state["behaviour"])

    first = stored()
    assert first["days"][1:] == [2, 11_500]  # two purchases, 14,000 less the 2,500 refunded
    service.process(batch)
    service.process([batch[1], feed.purchase("p3", "alice", 1_000), batch[2]])
    restarted = EarningService(engine, load_ruleset(RULES), TOPICS, clock=lambda: NOW)
    restarted.process(batch)
    after = stored()
    assert after["days"][1:] == [3, 12_500]  # only p3 is new
    assert {k: v for k, v in after.items() if k != "days"} == {
        k: v for k, v in first.items() if k != "days"
    } | {"mcc_groups": {"groceries": 3}}


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
    messages = [m for m in OutboxStore(engine).pending(1000) if m.topic == TOPICS.points_ledger]
    bodies = sorted(
        (json.loads(m.value)["entry_key"], json.loads(m.value)["points"]) for m in messages
    )
    assert bodies == [("earn:c1", 5), ("earn:p1", 200)]
    assert {m.key for m in messages} == {b"ivy"}
    assert sorted(m.dedupe_key for m in messages) == ["ledger:earn:c1", "ledger:earn:p1"]


# -- the working set: what a worker remembers between batches ---------------------------------

SEGMENT_RULES = """
version: "test-segments-1"
currency: CNY
currency_exponent: 2
timezone: UTC
eligible_statuses: [active, dormant]
mcc_groups:
  groceries: ["5411"]
caps: {per_transaction: 100000, per_day: 1000000, per_month: 10000000}
rules:
  - id: base-everyday
    kind: base_rate
    description: "1 point per yuan"
    points: 1
    per_minor: 100
  - id: long-tail-bonus
    kind: campaign
    description: "Long-tail customers: 20 bonus points per purchase"
    window: {starts_at: "2026-01-01T00:00:00+00:00", ends_at: "2027-12-31T00:00:00+00:00"}
    audience: {segments: [long_tail]}
    fixed_points: 20
"""


def stored_state(engine: Engine, customer: str) -> tuple[dict[str, Any], int]:
    with engine.connect() as conn:
        return store.load_states_versioned(conn, [customer])[customer]


def profile(feed: Feed, event_id: str, customer: str, segment: str) -> RawMessage:
    return feed.raw(
        TOPICS.bank_customers,
        {
            "event_type": "customer_profile",
            "event_id": event_id,
            "customer_id": customer,
            "occurred_at": "2026-11-27T08:00:00+00:00",
            "segment": segment,
            "joined_at": "2020-01-01T00:00:00+00:00",
            "status": "active",
        },
    )


def test_a_worker_whose_remembered_state_is_stale_redoes_the_batch_from_the_database(
    engine: Engine,
) -> None:
    """Worker A remembers alice after her first purchase; worker B (a rebalance) then applies
    her second. A's third purchase must build on B's state, not on what A remembered: the
    versioned write refuses A's stale copy, and A redoes the batch from the database."""
    rules = load_ruleset(RULES)
    worker_a = EarningService(engine, rules, TOPICS, clock=lambda: NOW)
    worker_b = EarningService(engine, rules, TOPICS, clock=lambda: NOW)
    feed = Feed()
    assert worker_a.process([feed.purchase("p1", "alice", 1_000)]).points_earned == 110
    assert worker_b.process([feed.purchase("p2", "alice", 1_000)]).points_earned == 10
    outcome = worker_a.process([feed.purchase("p3", "alice", 1_000)])
    assert (outcome.stored, outcome.points_earned) == (1, 10)  # no second first-purchase bonus
    state, version = stored_state(engine, "alice")
    assert (state["purchase_count"], version) == (3, 3)
    assert balance(engine, "alice") == (130, 0)
    assert_verified(engine)


def test_a_profile_change_by_another_worker_reaches_a_worker_that_remembered_the_old_one(
    engine: Engine, tmp_path: Path
) -> None:
    """A profile is remembered with the customer's state version, and every profile change
    bumps that version: so a segment change applied elsewhere is never missed."""
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(SEGMENT_RULES)
    rules = load_ruleset(rules_file)
    worker_a = EarningService(engine, rules, TOPICS, clock=lambda: NOW)
    worker_b = EarningService(engine, rules, TOPICS, clock=lambda: NOW)
    feed = Feed()
    worker_a.process([profile(feed, "prof-1", "bo", "mass")])
    assert worker_a.process([feed.purchase("p1", "bo", 1_000)]).points_earned == 10
    worker_b.process([profile(feed, "prof-2", "bo", "long_tail")])
    assert worker_a.process([feed.purchase("p2", "bo", 1_000)]).points_earned == 30
    assert stored_state(engine, "bo")[1] == 4  # profile, purchase, profile, purchase
    assert_verified(engine)


def test_a_batch_that_fails_leaves_nothing_remembered(engine: Engine) -> None:
    """If the transaction fails, nothing the batch computed is remembered: the next batch
    reads the customer from the database (here: the purchase was never stored, so the retry
    earns the first-purchase bonus exactly once)."""
    rules = load_ruleset(RULES)
    calls = {"n": 0}

    def failing_once_clock() -> datetime:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated failure inside the batch")
        return NOW

    worker = EarningService(engine, rules, TOPICS, clock=failing_once_clock)
    feed = Feed()
    worker.process([feed.check_in("c1", "cy")])
    purchase = feed.purchase("p1", "cy", 1_000)
    with pytest.raises(RuntimeError):
        worker.process([purchase])
    assert worker.process([purchase]).points_earned == 110
    assert balance(engine, "cy") == (115, 0)
    assert stored_state(engine, "cy")[1] == 2
