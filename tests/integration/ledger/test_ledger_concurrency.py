"""Concurrent writers on PostgreSQL: no deadlock, no queueing on hot accounts, clean verify."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from points.db import make_engine
from points.ledger import (
    AccountRef,
    AlreadyApplied,
    Applied,
    Earn,
    Operation,
    OperationResult,
    Spend,
    apply_batch,
    customer_lots,
    verify,
)
from points.ledger.queries import account_balance, customer_balance
from points.ledger.service import OPTIMISTIC_BATCH_MIN
from points.ledger.store import Store
from points.migrate import upgrade
from tests.integration.ledger.support import LATER, NOW, assert_clean

SOON = NOW + timedelta(days=30)


@pytest.fixture
def pg_engine(fresh_pg_url: str) -> Engine:
    upgrade(fresh_pg_url)
    return make_engine(fresh_pg_url, pool_size=4)


def writer_batches(name: str, batches: int, size: int) -> list[list[Operation]]:
    """Mixed work for one writer: its own customers, the shared hot accounts."""
    out: list[list[Operation]] = []
    for b in range(batches):
        batch: list[Operation] = []
        for i in range(size):
            customer = f"{name}-{i % 7}"
            key = f"{name}-{b}-{i}"
            batch.append(Earn(f"{key}-e", customer, 10, SOON))
            batch.append(Earn(f"{key}-in", customer, 5, SOON, kind="swap",
                              from_partner="ride"))
            batch.append(Spend(f"{key}-s", customer, 4, to_partner="ride"))
        out.append(batch)
    return out


def test_two_writers_sharing_hot_accounts_finish_without_deadlock(pg_engine: Engine) -> None:
    """Two threads write disjoint customers through the same issuance and partner clearing
    accounts at the same time: every batch commits, and verify is clean afterwards."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(name: str) -> None:
        try:
            start.wait()
            for batch in writer_batches(name, batches=15, size=30):
                with pg_engine.begin() as conn:
                    results = apply_batch(conn, batch, now=NOW)
                assert all(isinstance(r, Applied) for r in results)
        except BaseException as exc:  # reported below; a deadlock lands here
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with pg_engine.connect() as conn:
        report = verify(conn)
        assert report.ok, report.violations
        per_writer = 15 * 30
        assert account_balance(conn, AccountRef.issuance("bank")) == -2 * per_writer * 10
        assert account_balance(conn, AccountRef.clearing("bank", "ride")) == 0 - (
            2 * per_writer * 5) + 2 * per_writer * 4
        total = sum(customer_balance(conn, f"{w}-{i}", now=NOW).available
                    for w in "ab" for i in range(7))
        assert total == 2 * per_writer * 11
    pg_engine.dispose()


def test_an_open_transaction_on_a_hot_account_does_not_block_another_writer(
    pg_engine: Engine,
) -> None:
    """While one transaction holds its shard of the issuance account, a second writer's
    earning commits at once (lock_timeout proves it did not wait)."""
    with pg_engine.begin() as conn:  # the hot account exists before the race, as in service
        apply_batch(conn, [Earn("setup", "carol", 1, SOON)], now=NOW)
    with pg_engine.connect() as first:
        first.begin()
        apply_batch(first, [Earn("first", "alice", 10, SOON)], now=NOW)
        with pg_engine.connect() as second:
            second.begin()
            second.execute(text("SET LOCAL lock_timeout = '2s'"))
            (result,) = apply_batch(second, [Earn("second", "bob", 10, SOON)], now=NOW)
            second.commit()
        first.commit()
    assert isinstance(result, Applied)
    with pg_engine.connect() as conn:
        assert verify(conn).ok
        assert account_balance(conn, AccountRef.issuance("bank")) == -21
        shards = conn.execute(text(
            "SELECT count(*) FROM ledger_balances b JOIN ledger_accounts a"
            " ON a.id = b.account_id WHERE a.kind = 'issuance' AND b.balance <> 0"
        )).scalar_one()
    assert shards >= 2  # the two open writers' deltas landed on different shards
    pg_engine.dispose()


def wait_until_blocked_on_a_lock(engine: Engine, backend_pid: int, timeout_s: float) -> None:
    """Poll ``pg_stat_activity`` until the backend ``backend_pid`` waits on a lock (its
    ``wait_event_type`` is ``Lock``): the proof that it queues behind another transaction."""
    deadline = time.monotonic() + timeout_s
    with engine.connect() as observer:
        while True:
            waiting = observer.execute(text(
                "SELECT wait_event_type, wait_event, state FROM pg_stat_activity"
                " WHERE pid = :pid"), {"pid": backend_pid}).one_or_none()
            observer.rollback()  # a fresh snapshot of the statistics on each look
            if waiting is not None and waiting[0] == "Lock":
                return
            assert time.monotonic() < deadline, f"backend {backend_pid} never waited: {waiting}"
            time.sleep(0.01)


def test_a_large_batch_racing_an_uncommitted_one_on_a_key_replays_it(pg_engine: Engine) -> None:
    """A large batch (optimistic path) meets a key that another open transaction has just
    written: it waits for that transaction (PostgreSQL shows it waiting on a lock), then
    answers the key as a replay of its entry and applies the rest (no unique violation for
    the caller to retry)."""
    size = OPTIMISTIC_BATCH_MIN
    with pg_engine.begin() as conn:  # accounts exist before the race
        apply_batch(conn, [Earn("setup", "carol", 1, SOON)], now=NOW)
    outcome: list[list[OperationResult]] = []
    errors: list[BaseException] = []
    second_pid: list[int] = []
    second_started = threading.Event()
    with pg_engine.connect() as first:
        first.begin()
        mine = apply_batch(first, [Earn(f"a{i}", "alice", 1, SOON) for i in range(size)]
                           + [Earn("race", "dave", 7, SOON)], now=NOW)

        def second_writer() -> None:
            try:
                with pg_engine.begin() as conn:
                    second_pid.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                    second_started.set()
                    outcome.append(apply_batch(
                        conn, [Earn(f"b{i}", "bob", 1, SOON) for i in range(size)]
                        + [Earn("race", "dave", 7, SOON)], now=NOW))
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                second_started.set()

        thread = threading.Thread(target=second_writer)
        thread.start()
        assert second_started.wait(30) and second_pid, errors
        wait_until_blocked_on_a_lock(pg_engine, second_pid[0], timeout_s=30)
        assert not outcome  # it cannot have finished while the first holds "race"
        first.commit()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert not errors, errors
    (theirs,) = outcome
    assert isinstance(mine[-1], Applied)
    assert theirs[-1] == AlreadyApplied("race", mine[-1].entry_id)
    assert all(isinstance(r, Applied) for r in theirs[:-1])
    with pg_engine.connect() as conn:
        assert verify(conn).ok
        assert customer_balance(conn, "dave", now=NOW).available == 7
        assert customer_balance(conn, "bob", now=NOW).available == size
    pg_engine.dispose()


def test_a_wallet_created_by_another_writer_meanwhile_is_used(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new wallet is not looked up again before it is inserted; if another writer commits
    it in between, the insert meets it and the batch uses that account."""
    # PostgreSQL only: SQLite has one writer at a time, so nothing can come in between.
    engine = pg_engine
    load: Callable[..., Any] = Store.load_customers
    raced = {"done": False}

    def load_then_race(self: Store, *args: Any) -> Any:
        found = load(self, *args)
        if not raced["done"]:
            raced["done"] = True
            with engine.begin() as other:  # another writer, committed before we insert
                apply_batch(other, [Earn("other-writer", "racer", 3, LATER)], now=NOW)
        return found

    monkeypatch.setattr(Store, "load_customers", load_then_race)
    ops = [Earn(f"race-{i}", "racer" if i == 7 else f"r{i}", 10, LATER)
           for i in range(OPTIMISTIC_BATCH_MIN)]
    with engine.begin() as conn:
        results = apply_batch(conn, ops, now=NOW)
    assert raced["done"] and all(isinstance(r, Applied) for r in results)
    with engine.connect() as conn:
        wallets = conn.execute(text(
            "SELECT count(*) FROM ledger_accounts WHERE owner = 'racer'")).scalar_one()
        lots = [lot.amount for lot in customer_lots(conn, "racer")]
    assert wallets == 1 and sorted(lots) == [3, 10]
    assert_clean(engine)
