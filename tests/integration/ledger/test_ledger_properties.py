"""Property tests: random operation streams with duplicates, replays and reordered retries.

Each example gets its own customers and keys (a fresh prefix) in the test's database, so the
examples share one migrated database without seeing each other's accounts.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from points.ledger import (
    Adjust,
    AlreadyApplied,
    Applied,
    Clawback,
    Earn,
    ExpireHolds,
    ExpireLots,
    Hold,
    Operation,
    OperationResult,
    PostHold,
    Reason,
    Rejected,
    Reverse,
    Spend,
    VoidHold,
    apply_batch,
)
from tests.integration.ledger.support import NOW, assert_clean

CUSTOMERS = ("c0", "c1", "c2")
amounts = st.integers(min_value=1, max_value=60)


@st.composite
def operation_stream(draw: st.DrawFn) -> list[Operation]:
    """Operations with unique keys; later ones may refer to earlier keys (or to none)."""
    ops: list[Operation] = []
    for n in range(draw(st.integers(min_value=1, max_value=24))):
        key = f"k{n}"
        customer = draw(st.sampled_from(CUSTOMERS))
        earlier = [op.idempotency_key for op in ops] or ["missing"]
        ref = draw(st.sampled_from(earlier))
        choice = draw(st.sampled_from(
            ["earn", "earn", "spend", "hold", "post", "void", "reverse", "clawback",
             "adjust", "expire_lots", "expire_holds"]))
        op: Operation
        if choice == "earn":
            op = Earn(key, customer, draw(amounts),
                      NOW + timedelta(days=draw(st.integers(min_value=1, max_value=20))),
                      from_partner=draw(st.sampled_from([None, None, "ride"])))
        elif choice == "spend":
            op = Spend(key, customer, draw(amounts),
                       to_partner=draw(st.sampled_from([None, "shop"])))
        elif choice == "hold":
            op = Hold(key, customer, draw(amounts),
                      NOW + timedelta(hours=draw(st.integers(min_value=1, max_value=30))),
                      to_partner="ride")
        elif choice == "post":
            op = PostHold(key, ref, draw(st.one_of(st.none(), amounts)))
        elif choice == "void":
            op = VoidHold(key, ref)
        elif choice == "reverse":
            op = Reverse(key, ref)
        elif choice == "clawback":
            op = Clawback(key, ref, draw(st.one_of(st.none(), amounts)))
        elif choice == "adjust":
            delta = draw(st.integers(min_value=-40, max_value=40).filter(bool))
            op = Adjust(key, customer, delta, Reason(operator="ops", note="property"),
                        expires_at=NOW + timedelta(days=3))
        elif choice == "expire_lots":
            op = ExpireLots(key, NOW + timedelta(days=draw(st.integers(0, 25))))
        else:
            op = ExpireHolds(key, NOW + timedelta(hours=draw(st.integers(0, 40))))
        ops.append(op)
    return ops


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Operation], list[list[Operation]]]:
    """The stream as an at-least-once transport delivers it: duplicates, replays of earlier
    messages, reordered windows, cut into batches."""
    ops = draw(operation_stream())
    delivered: list[Operation] = []
    for op in ops:
        delivered.append(op)
        if draw(st.integers(0, 5)) == 0:
            delivered.append(op)  # duplicate
        if draw(st.integers(0, 5)) == 0:
            delivered.append(draw(st.sampled_from(delivered)))  # replay of an earlier one
    window = draw(st.integers(1, 4))
    reordered: list[Operation] = []
    for start in range(0, len(delivered), window):
        chunk = delivered[start:start + window]
        reordered.extend(draw(st.permutations(chunk)))  # retries arrive out of order
    batches: list[list[Operation]] = []
    rest = reordered
    while rest:
        size = draw(st.integers(1, 8))
        batches.append(rest[:size])
        rest = rest[size:]
    return ops, batches


def prefixed(op: Operation, prefix: str) -> Operation:
    """The same operation in an example's own namespace of keys and customers."""
    import dataclasses

    # Any: each operation type has its own fields, and only those it has are changed.
    changes: dict[str, Any] = {"idempotency_key": prefix + op.idempotency_key}
    for name in ("customer_id", "hold_key", "entry_key", "earning_key"):
        if hasattr(op, name):
            changes[name] = prefix + getattr(op, name)
    return dataclasses.replace(op, **changes)


def snapshot(engine: Engine, prefix: str) -> tuple[object, ...]:
    with engine.connect() as conn:
        balances = conn.execute(text(
            "SELECT a.program, a.owner, a.kind, sum(b.balance) FROM ledger_accounts a"
            " JOIN ledger_balances b ON b.account_id = a.id"
            " GROUP BY a.program, a.owner, a.kind ORDER BY 1, 2, 3")).all()
        entries = conn.execute(text(
            "SELECT count(*) FROM ledger_entries WHERE idempotency_key LIKE :p"),
            {"p": prefix + "%"}).scalar_one()
        lots = conn.execute(text(
            "SELECT l.entry_id, l.remaining FROM ledger_lots l"
            " JOIN ledger_accounts a ON a.id = l.account_id WHERE a.owner LIKE :p"
            " ORDER BY 1"), {"p": prefix + "%"}).all()
    return tuple(balances), entries, tuple(lots)


def outcome(result: OperationResult) -> tuple[object, ...]:
    """What a result says about the key's fate: its entry, and applied or the refusal."""
    if isinstance(result, Rejected):
        return ("rejected", result.entry_id, result.code)
    return ("applied", result.entry_id)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=deliveries())
def test_any_delivery_keeps_every_invariant_and_replay_changes_nothing(
    engine: Engine, plan: tuple[list[Operation], list[list[Operation]]]
) -> None:
    """For random operations delivered with duplicates, replays and reordering:
    every batch leaves a ledger that verifies; every key keeps one fate (one entry, applied
    or the same refusal); and delivering the whole stream again changes nothing."""
    _, batches = plan
    prefix = f"p{uuid.uuid4().hex[:10]}-"
    batches = [[prefixed(op, prefix) for op in batch] for batch in batches]
    fate: dict[str, tuple[object, ...]] = {}
    for n, batch in enumerate(batches):
        with engine.begin() as conn:
            results = apply_batch(conn, batch, now=NOW + timedelta(hours=n))
        assert_clean(engine)
        for op, result in zip(batch, results, strict=True):
            assert result.idempotency_key == op.idempotency_key
            seen = fate.setdefault(op.idempotency_key, outcome(result))
            assert outcome(result) == seen, (op, result, seen)
    applied = sum(1 for f in fate.values() if f[0] == "applied")
    event(f"applied {min(applied, 10) // 5 * 5}+ of {min(len(fate), 10) // 5 * 5}+ keys")
    before = snapshot(engine, prefix)
    for n, batch in enumerate(batches):
        with engine.begin() as conn:
            results = apply_batch(conn, batch, now=NOW + timedelta(days=60, hours=n))
        for op, result in zip(batch, results, strict=True):
            assert isinstance(result, AlreadyApplied | Rejected), result
            assert not isinstance(result, Applied)
            if isinstance(result, Rejected):
                assert result.replayed
            assert outcome(result) == fate[op.idempotency_key]
    assert snapshot(engine, prefix) == before
    assert_clean(engine)
