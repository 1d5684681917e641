"""The ledger's write API: ``apply_batch`` (many operations, one transaction) and ``apply``.

Both run inside the caller's transaction (``Connection``) and never commit, so a consumer can
write its inbox rows, the ledger entries and its outbox rows atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from points.errors import (
    IdempotencyConflict,
    InvalidRequest,
    LedgerInvariantViolated,
    LimitExceeded,
    error_for_code,
)
from points.ledger.batch_state import BatchState
from points.ledger.engine import decide, referenced_keys
from points.ledger.model import (
    BATCH_SIZE_MAX,
    AccountRef,
    AlreadyApplied,
    Applied,
    Earn,
    ExpireHolds,
    ExpireLots,
    Operation,
    OperationResult,
    Rejected,
    request_hash,
)
from points.ledger.store import KeyTaken, Store, open_store

__all__ = ["KEY_LENGTH_MAX", "OPTIMISTIC_BATCH_MIN", "apply", "apply_batch"]

KEY_LENGTH_MAX = 128
OPTIMISTIC_BATCH_MIN = 32
"""From this many operations on PostgreSQL, keys are not looked up before the batch is
decided: a savepoint and ``ON CONFLICT DO NOTHING`` on the entries find a stored key instead
(two extra round trips, so small batches keep the lookup)."""


def apply_batch(
    conn: Connection, operations: Sequence[Operation], *, now: datetime
) -> list[OperationResult]:
    """Apply ``operations`` in order inside the caller's transaction; one result each.

    - a new request is decided and stored: ``Applied`` or ``Rejected`` (the refusal is
      stored too, so a replay gets the same refusal);
    - a replay (same key, same request) changes nothing: ``AlreadyApplied`` or the stored
      ``Rejected`` with ``replayed=True``;
    - the same key with a different request: ``Rejected(IdempotencyConflict)``, not stored.

    Raises only for limits, database errors (the caller rolls back and retries the batch) and
    ``LedgerInvariantViolated``.
    """
    if now.tzinfo is None:
        raise InvalidRequest("now must carry a time zone")
    if len(operations) > BATCH_SIZE_MAX:
        raise LimitExceeded(f"{len(operations)} operations exceed the batch limit")
    if not operations:
        return []
    return _apply_batch(conn, operations, now)


def _apply_batch(conn: Connection, operations: Sequence[Operation],
                 now: datetime) -> list[OperationResult]:
    store = open_store(conn)
    store.hold_write_lock()
    digests = [request_hash(op) for op in operations]
    results: list[OperationResult | None] = [None] * len(operations)
    valid: list[int] = []
    for i, op in enumerate(operations):
        key = op.idempotency_key
        if not key or len(key) > KEY_LENGTH_MAX:
            results[i] = Rejected(key, InvalidRequest(
                f"idempotency key must be 1..{KEY_LENGTH_MAX} characters"), None)
            continue
        valid.append(i)
    first_seen: dict[str, int] = {}
    if store.optimistic_writes and len(valid) >= OPTIMISTIC_BATCH_MIN:
        # Optimistic: most batches carry no stored key, so skip the lookup and let the
        # entries' unique key say so while inserting (inside a savepoint). If any key turns
        # out to be stored, undo the attempt and take the looked-up path below.
        new = []
        for i in valid:
            key = operations[i].idempotency_key
            if key not in first_seen:
                first_seen[key] = i
                new.append(i)
        attempt = list(results)
        store.savepoint()
        try:
            _decide_and_write(store, operations, digests, new, attempt, now, optimistic=True)
        except (KeyTaken, IntegrityError, LedgerInvariantViolated):
            # A stored key: the attempt decided as if it were new. If another operation of the
            # batch names that key (a clawback of a replayed earning, a post of a replayed
            # hold), the attempt fails on the reference before the key check can say so.
            # Either way the looked-up path decides again from what is stored, and raises
            # anything that was not caused by the assumption.
            store.rollback_to_savepoint()
            first_seen = {}
        else:
            store.release_savepoint()
            return _finish(operations, digests, valid, first_seen, attempt)
    stored = store.existing(list({operations[i].idempotency_key for i in valid}))
    new = []
    for i in valid:
        op, digest = operations[i], digests[i]
        key = op.idempotency_key
        found = stored.get(key)
        if found is not None:
            results[i] = _replayed(key, digest, found.entry_id, found.request_hash,
                                   found.reject_code, found.reject_message)
        elif key in first_seen:
            continue  # a duplicate inside the batch: answered after the first is decided
        else:
            first_seen[key] = i
            new.append(i)
    if new:
        _decide_and_write(store, operations, digests, new, results, now)
    return _finish(operations, digests, valid, first_seen, results)


def _finish(operations: Sequence[Operation], digests: list[int], valid: list[int],
            first_seen: dict[str, int],
            results: list[OperationResult | None]) -> list[OperationResult]:
    for i in valid:  # duplicates inside the batch mirror their first occurrence
        if results[i] is None:
            first = first_seen[operations[i].idempotency_key]
            results[i] = _mirror(results[first], digests[first], digests[i])
    return [r for r in results if r is not None]


def apply(conn: Connection, operation: Operation, *, now: datetime) -> Applied | AlreadyApplied:
    """Apply one operation; a refusal is raised as its typed error (after being stored)."""
    (result,) = apply_batch(conn, [operation], now=now)
    if isinstance(result, Rejected):
        raise result.error
    return result


def _replayed(key: str, digest: int, entry_id: int, stored_hash: int,
              reject_code: str | None, reject_message: str | None) -> OperationResult:
    if stored_hash != digest:
        return Rejected(key, IdempotencyConflict(
            f"key {key!r} was used for a different request (entry {entry_id})"), None)
    if reject_code is not None:
        return Rejected(key, error_for_code(reject_code, reject_message or ""), entry_id,
                        replayed=True)
    return AlreadyApplied(key, entry_id)


def _mirror(first: OperationResult | None, first_digest: int, digest: int) -> OperationResult:
    assert first is not None
    key = first.idempotency_key
    if isinstance(first, Rejected) and first.entry_id is None:
        return first
    assert first.entry_id is not None
    if first_digest != digest:
        return Rejected(key, IdempotencyConflict(
            f"key {key!r} was used for a different request (entry {first.entry_id})"), None)
    if isinstance(first, Rejected):
        return Rejected(key, first.error, first.entry_id, replayed=True)
    return AlreadyApplied(key, first.entry_id)


def _customer_of(op: Operation) -> tuple[str, str] | None:
    customer = getattr(op, "customer_id", None)
    if customer is None:
        return None
    return (op.program, customer)  # type: ignore[union-attr]


def _decide_and_write(
    store: Store,
    operations: Sequence[Operation],
    digests: list[int],
    new: list[int],
    results: list[OperationResult | None],
    now: datetime,
    *,
    optimistic: bool = False,
) -> None:
    ops = [operations[i] for i in new]
    entry_ids = store.allocate_ids(len(ops))
    new_keys = {op.idempotency_key for op in ops}

    # 1. What the operations refer to: holds, earlier entries, due holds and lots.
    hold_keys, entry_keys = referenced_keys(ops)
    holds = store.holds_by_key(hold_keys - new_keys)
    entries = store.entries_by_key(entry_keys - new_keys)
    customers: set[tuple[str, str]] = set()
    debtors: set[tuple[str, str]] = set()  # customers whose wallets may be debited
    for op in ops:
        if type(op) is Earn:  # the common case: credits only
            customers.add((op.program, op.customer_id))
            continue
        pair = _customer_of(op)
        if pair is not None:
            customers.add(pair)
            if not isinstance(op, Earn):
                debtors.add(pair)
        if isinstance(op, ExpireHolds):
            holds.update(store.due_holds(op.program, op.as_of, op.limit))
        elif isinstance(op, ExpireLots):
            debtors.update((op.program, c) for c in
                           store.due_lot_customers(op.program, op.as_of, op.limit))
    in_batch = entry_keys & new_keys  # a reversal or clawback of an entry in this batch
    by_key = {op.idempotency_key: op for op in ops} if in_batch else {}
    for key in in_batch:
        pair = _customer_of(by_key[key])
        if pair is not None:
            debtors.add(pair)
    for hold in holds.values():
        debtors.add((hold.program, hold.customer_id))
    for info in entries.values():
        if info.program is not None and info.customer_id is not None:
            debtors.add((info.program, info.customer_id))

    # 2. Lock the debtors' accounts (one global order), then read their lots.
    balances, ids = store.load_customers(debtors, customers)
    wallets = {ids[ref]: ref for ref in (AccountRef.wallet(p, c) for p, c in debtors)
               if ref in ids}
    lots = store.open_lots(wallets)
    for program, customer in debtors:
        lots.setdefault(AccountRef.wallet(program, customer), [])
    loaded = {lot.lot_id for wallet_lots in lots.values() for lot in wallet_lots}
    wanted = {lot_id for hold in holds.values() for lot_id, _ in hold.consumed}
    for info in entries.values():
        wanted.update(lot_id for lot_id, _ in info.lot_moves)
        if info.created_lot is not None:
            wanted.add(info.created_lot)
    known_lots = store.lots_by_id(wanted - loaded)

    # 3. Decide in order (pure), 4. write set-based.
    state = BatchState(balances=balances, lots=lots, holds=holds, entries=entries)
    triples = [(op, entry_id, digests[i]) for op, entry_id, i in
               zip(ops, entry_ids, new, strict=True)]
    drafts = decide(triples, state, now=now, known_lots=known_lots)
    refs: set[AccountRef] = set()
    add = refs.add
    for d in drafts:
        for debit, credit, _ in d.legs:
            add(debit)
            add(credit)
        if d.new_hold is not None:
            add(d.new_hold.destination)
    store.resolve_accounts(refs, ids, now)
    store.write(drafts, ids, now, optimistic=optimistic)
    for i, d in zip(new, drafts, strict=True):
        if d.error is None:
            results[i] = Applied(d.key, d.entry_id)
        else:
            results[i] = Rejected(d.key, d.error, d.entry_id)

