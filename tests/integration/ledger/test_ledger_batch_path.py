"""The large-batch path (earnings in bulk) decides exactly as one operation at a time does.

Run on SQLite and PostgreSQL. The same workload goes to two programs of one ledger: to
``bank`` as one large batch (optimistic on PostgreSQL, earnings straight to the engine, ids
formatted once, lot times as epoch microseconds, new wallets not looked up twice) and to
``twin`` one operation per call (the looked-up path, below ``OPTIMISTIC_BATCH_MIN``). Every
answer, entry, leg, lot and balance must match, entry ids aside.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, text

from points.ledger import (
    AlreadyApplied,
    Applied,
    Clawback,
    Earn,
    Operation,
    OperationResult,
    Reason,
    Rejected,
    Spend,
    apply_batch,
    customer_lots,
)
from points.ledger.service import OPTIMISTIC_BATCH_MIN
from tests.integration.ledger.support import LATER, NOW, assert_clean

FAR = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)  # beyond epoch microseconds
ODD_ZONE = timezone(timedelta(hours=5, minutes=45))
REASON = Reason(rule_ids=("base", 'q"uote'), ruleset_version="v\\1", source_event="ev")


def _in(program: str, op: Operation) -> Operation:
    """The operation for ``program``: keys (and the keys it names) prefixed."""
    changes: dict[str, Any] = {"idempotency_key": f"{program}:{op.idempotency_key}"}
    if isinstance(op, Clawback):
        changes["earning_key"] = f"{program}:{op.earning_key}"
    else:
        changes["program"] = program
    return dataclasses.replace(op, **changes)


def _workload(prefix: str) -> tuple[list[Operation], list[Operation]]:
    """(set-up operations, the batch): existing and new customers, debts to pay down,
    replays, in-batch duplicates and conflicts, partner-funded (hot) earnings, refusals."""
    setup: list[Operation] = [
        *(Earn(f"{prefix}old-{i}", f"old{i}", 20, LATER) for i in range(4)),
        Earn(f"{prefix}debt-earn", "debtor", 30, LATER),
        Spend(f"{prefix}debt-spend", "debtor", 25),
        Clawback(f"{prefix}debt-claw", f"{prefix}debt-earn"),  # 5 from the wallet, 25 debt
        Earn(f"{prefix}refused", "old0", 0, LATER),
    ]
    batch: list[Operation] = []
    for i in range(2 * OPTIMISTIC_BATCH_MIN):
        customer = f"old{i % 4}" if i % 3 == 0 else f"new{i % 7}"
        batch.append(Earn(f"{prefix}e{i}", customer, 5 + i,
                          (NOW + timedelta(days=30 + i, microseconds=i)).astimezone(ODD_ZONE),
                          reason=REASON))
    batch[5:5] = [
        Earn(f"{prefix}old-1", "old1", 20, LATER),            # replay of a stored earning
        Earn(f"{prefix}old-2", "old2", 21, LATER),            # stored key, other request
        Earn(f"{prefix}refused", "old0", 0, LATER),           # a stored refusal, replayed
        Earn(f"{prefix}pay-debt", "debtor", 10, LATER),       # pays 10 of the 25 debt
        Earn(f"{prefix}pay-rest", "debtor", 40, FAR),         # 15 to debt, 25 to a far lot
        Earn(f"{prefix}swap-a", "new1", 50, LATER, kind="swap", from_partner="pa"),
        Earn(f"{prefix}swap-b", "new2", 60, LATER, kind="swap", from_partner="pa"),
        Earn(f"{prefix}ref", "new3", 7, LATER, kind="referral"),
        Earn(f"{prefix}far", "new4", 8, FAR, reason=Reason(note="never expires")),
        Earn(f"{prefix}naive", "new5", 9, LATER.replace(tzinfo=None)),
        Earn(f"{prefix}no-partner", "new5", 9, LATER, kind="swap"),
        Earn(f"{prefix}too-much", "new6", 10**13, LATER),
    ]
    batch[20:20] = [
        Earn(f"{prefix}e3", batch[8].customer_id if isinstance(batch[8], Earn) else "x", 1,
             LATER),                                        # in-batch key, other request
        batch[30],                                          # in-batch duplicate
        Clawback(f"{prefix}claw-in-batch", f"{prefix}e1", 3),
        Clawback(f"{prefix}claw-stored", f"{prefix}old-3", 50),  # 20 from wallet, 30 debt
        Earn(f"{prefix}after-claw", "old3", 12, LATER),      # pays the new debt down
    ]
    return setup, batch


def _answer(result: OperationResult, keys: dict[int, str], program: str) -> tuple[Any, ...]:
    entry = None if result.entry_id is None else keys[result.entry_id].split(":", 1)[1]
    key = result.idempotency_key.split(":", 1)[1]
    if isinstance(result, Rejected):
        message = result.error.message.replace(f"{program}:", "")
        message = message.split(" (entry ")[0]  # a conflict names the stored entry's id
        return ("rejected", key, result.code, message, entry, result.replayed)
    return (type(result).__name__, key, entry)


def _rows(engine: Engine, program: str) -> dict[str, Any]:
    """Everything the program's entries wrote, keyed by idempotency key (ids mapped away)."""
    with engine.connect() as conn:
        def rows(sql: str) -> list[Any]:
            params = {"p": program, "n": len(program) + 2}
            return [tuple(r) for r in conn.execute(text(sql), params)]
        entries = rows(
            "SELECT substr(idempotency_key, :n), kind, status, customer_id, amount,"
            " reject_code, reject_message, CAST(reason AS TEXT), target_entry_id IS NOT NULL"
            " FROM ledger_entries WHERE program = :p ORDER BY id")
        legs = rows(
            "SELECT substr(e.idempotency_key, :n), g.leg_no, d.owner, d.kind, c.owner, c.kind,"
            " g.amount FROM ledger_legs g JOIN ledger_entries e ON e.id = g.entry_id"
            " JOIN ledger_accounts d ON d.id = g.debit_account_id"
            " JOIN ledger_accounts c ON c.id = g.credit_account_id"
            " WHERE e.program = :p ORDER BY 1, 2")
        lots = rows(
            "SELECT substr(e.idempotency_key, :n), a.owner, l.expires_at, l.amount, l.remaining"
            " FROM ledger_lots l JOIN ledger_entries e ON e.id = l.entry_id"
            " JOIN ledger_accounts a ON a.id = l.account_id WHERE e.program = :p ORDER BY 1")
        accounts = rows(
            "SELECT a.owner, a.kind, a.shard_count, count(b.shard), sum(b.balance)"
            " FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id"
            " WHERE a.program = :p GROUP BY 1, 2, 3 ORDER BY 1, 2")
    found = {"entries": entries, "legs": legs, "lots": lots, "accounts": accounts}
    # the request hashes differ (they include the program), the answers above compare them;
    # the program's own accounts (issuance) are owned by the program: name it alike
    same = {name: [tuple("<program>" if v == program else v for v in row) for row in table]
            for name, table in found.items()}
    same["accounts"].sort()
    return same


def _entry_keys(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, idempotency_key FROM ledger_entries"))
        return {i: k for i, k in rows}


def _run_both(engine: Engine, setup: list[Operation], batch: list[Operation]) -> None:
    for program in ("bank", "twin"):
        with engine.begin() as conn:
            apply_batch(conn, [_in(program, op) for op in setup], now=NOW)
    with engine.begin() as conn:
        big = apply_batch(conn, [_in("bank", op) for op in batch], now=NOW)
    single: list[OperationResult] = []
    for op in batch:
        with engine.begin() as conn:
            single.extend(apply_batch(conn, [_in("twin", op)], now=NOW))
    assert_clean(engine)
    keys = _entry_keys(engine)
    assert [_answer(r, keys, "bank") for r in big] == [_answer(r, keys, "twin") for r in single]
    assert _rows(engine, "bank") == _rows(engine, "twin")
    kinds = {type(r) for r in big}
    assert {Applied, AlreadyApplied, Rejected} <= kinds  # the workload reached every answer


def test_a_large_earnings_batch_decides_like_one_operation_at_a_time(engine: Engine) -> None:
    setup, batch = _workload("")
    assert len(batch) >= OPTIMISTIC_BATCH_MIN
    _run_both(engine, setup, batch)


def test_lot_times_are_stored_exactly_near_and_far(engine: Engine) -> None:
    """Lot expiry goes as epoch microseconds when every time allows it, as text otherwise:
    both store the same instant, to the microsecond, whatever the zone given."""
    near = [NOW + timedelta(days=d, microseconds=d * 7919) for d in (1, 400, 80_000)]
    zoned = [t.astimezone(ODD_ZONE) for t in near]
    for customer, times in (("near", zoned), ("mixed", [*zoned, FAR])):
        ops = [Earn(f"{customer}-{i}", customer, 1 + i, t) for i, t in enumerate(times)]
        ops += [Earn(f"{customer}-pad-{i}", f"pad-{customer}", 1, LATER)
                for i in range(OPTIMISTIC_BATCH_MIN)]
        with engine.begin() as conn:
            assert all(isinstance(r, Applied) for r in apply_batch(conn, ops, now=NOW))
        with engine.connect() as conn:
            stored = [lot.expires_at for lot in customer_lots(conn, customer)]
        assert stored == sorted(times)
    assert_clean(engine)


def test_a_large_batch_with_a_replayed_earning_and_its_clawback_applies_the_clawback(
    engine: Engine,
) -> None:
    """A redelivered earning (its key stored) and a clawback of it in one large batch: the
    earning is answered as already applied and the clawback is applied against the stored
    entry — the batch does not fail on the reference to the replayed key."""
    with engine.begin() as conn:
        apply_batch(conn, [Earn("kept", "ada", 100, LATER)], now=NOW)
    filler = [Earn(f"f{i}", f"c{i}", 5, LATER) for i in range(OPTIMISTIC_BATCH_MIN)]
    batch: list[Operation] = [
        *filler, Earn("kept", "ada", 100, LATER), Clawback("claw", "kept", amount=40)
    ]
    with engine.begin() as conn:
        results = apply_batch(conn, batch, now=NOW)
    assert isinstance(results[-2], AlreadyApplied)
    assert isinstance(results[-1], Applied)
    assert all(isinstance(r, Applied) for r in results[:-2])
    with engine.connect() as conn:
        assert sum(lot.remaining for lot in customer_lots(conn, "ada")) == 60
    assert_clean(engine)
