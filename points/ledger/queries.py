"""Read side of the ledger: balances, statements, lots, holds. Read-only, caller's connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from points.ledger.model import BANK, AccountRef, Reason
from points.ledger.tables import accounts, balances, entries, hold_resolutions, holds, legs, lots

__all__ = [
    "CustomerBalance",
    "EntryView",
    "HoldView",
    "LotView",
    "StatementLine",
    "account_balance",
    "customer_balance",
    "customer_holds",
    "customer_lots",
    "entry_by_key",
    "statement",
]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _time_param(conn: Connection, value: datetime) -> Any:
    # SQLite stores UTC wall time as text; compare in the same form.
    if conn.dialect.name == "sqlite":
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


@dataclass(frozen=True, slots=True)
class CustomerBalance:
    available: int
    held: int
    debt: int
    expiring_soon: int
    """Points in lots that expire within the window asked for."""


@dataclass(frozen=True, slots=True)
class StatementLine:
    entry_id: int
    idempotency_key: str
    kind: str
    created_at: datetime
    wallet_delta: int
    held_delta: int
    debt_delta: int
    reason: Reason
    reverses_entry_id: int | None


@dataclass(frozen=True, slots=True)
class LotView:
    lot_id: int
    expires_at: datetime
    amount: int
    remaining: int


@dataclass(frozen=True, slots=True)
class HoldView:
    hold_key: str
    entry_id: int
    amount: int
    timeout_at: datetime
    destination: AccountRef
    status: str  # pending, posted, voided, expired
    posted: int


@dataclass(frozen=True, slots=True)
class EntryView:
    entry_id: int
    idempotency_key: str
    kind: str
    status: str
    program: str | None
    customer_id: str | None
    amount: int | None
    reject_code: str | None
    reason: Reason
    reverses_entry_id: int | None
    target_entry_id: int | None
    created_at: datetime
    legs: tuple[tuple[AccountRef, AccountRef, int], ...]


def account_balance(conn: Connection, ref: AccountRef) -> int:
    """Cached balance (credits minus debits, over all shards); 0 for an account not yet used."""
    value = conn.execute(
        select(func.coalesce(func.sum(balances.c.balance), 0))
        .select_from(balances.join(accounts, accounts.c.id == balances.c.account_id))
        .where(accounts.c.program == ref.program, accounts.c.owner == ref.owner,
               accounts.c.kind == ref.kind)
    ).scalar_one()
    return int(value)


def customer_balance(
    conn: Connection,
    customer_id: str,
    *,
    program: str = BANK,
    now: datetime,
    expiring_within: timedelta = timedelta(days=30),
) -> CustomerBalance:
    rows = conn.execute(
        select(accounts.c.kind, balances.c.balance)
        .select_from(balances.join(accounts, accounts.c.id == balances.c.account_id))
        .where(accounts.c.program == program, accounts.c.owner == customer_id,
               accounts.c.kind.in_(("wallet", "held", "receivable")))
    ).all()
    by_kind = {kind: int(balance) for kind, balance in rows}
    soon = conn.execute(
        select(func.coalesce(func.sum(lots.c.remaining), 0))
        .select_from(lots.join(accounts, accounts.c.id == lots.c.account_id))
        .where(accounts.c.program == program, accounts.c.owner == customer_id,
               accounts.c.kind == "wallet", lots.c.remaining > 0,
               lots.c.expires_at <= _time_param(conn, now + expiring_within))
    ).scalar_one()
    return CustomerBalance(
        available=by_kind.get("wallet", 0),
        held=by_kind.get("held", 0),
        debt=-by_kind.get("receivable", 0),
        expiring_soon=int(soon),
    )


def statement(
    conn: Connection, customer_id: str, *, program: str = BANK, limit: int = 100
) -> list[StatementLine]:
    """The customer's committed entries, newest first, with their effect on each balance."""
    account_rows = conn.execute(
        select(accounts.c.id, accounts.c.kind).where(
            accounts.c.program == program, accounts.c.owner == customer_id,
            accounts.c.kind.in_(("wallet", "held", "receivable")))
    ).all()
    kinds = {int(i): str(k) for i, k in account_rows}
    if not kinds:
        return []
    leg_rows = conn.execute(
        select(legs.c.entry_id, legs.c.debit_account_id, legs.c.credit_account_id,
               legs.c.amount)
        .where(or_(legs.c.debit_account_id.in_(kinds), legs.c.credit_account_id.in_(kinds)))
    ).all()
    effect: dict[int, dict[str, int]] = {}
    for entry_id, debit, credit, amount in leg_rows:
        per = effect.setdefault(int(entry_id), {"wallet": 0, "held": 0, "receivable": 0})
        if debit in kinds:
            per[kinds[debit]] -= int(amount)
        if credit in kinds:
            per[kinds[credit]] += int(amount)
    if not effect:
        return []
    newest = sorted(effect, reverse=True)[: max(limit, 0)]
    header_rows = conn.execute(
        select(entries.c.id, entries.c.idempotency_key, entries.c.kind, entries.c.created_at,
               entries.c.reason, entries.c.reverses_entry_id)
        .where(entries.c.id.in_(newest))
    ).all()
    headers = {int(r[0]): r for r in header_rows}
    lines = []
    for entry_id in newest:
        r = headers[entry_id]
        per = effect[entry_id]
        lines.append(StatementLine(
            entry_id, r[1], r[2], _aware(r[3]), per["wallet"], per["held"],
            -per["receivable"], Reason.from_json(r[4]), r[5],
        ))
    return lines


def customer_lots(
    conn: Connection, customer_id: str, *, program: str = BANK, include_spent: bool = False
) -> list[LotView]:
    """The wallet's lots, soonest expiry first."""
    query = (
        select(lots.c.entry_id, lots.c.expires_at, lots.c.amount, lots.c.remaining)
        .select_from(lots.join(accounts, accounts.c.id == lots.c.account_id))
        .where(accounts.c.program == program, accounts.c.owner == customer_id,
               accounts.c.kind == "wallet")
        .order_by(lots.c.expires_at, lots.c.entry_id)
    )
    if not include_spent:
        query = query.where(lots.c.remaining > 0)
    return [LotView(int(i), _aware(x), int(a), int(r)) for i, x, a, r in conn.execute(query)]


def customer_holds(
    conn: Connection, customer_id: str, *, program: str = BANK, pending_only: bool = True
) -> list[HoldView]:
    dest = accounts.alias("dest")
    wallet = accounts.alias("wallet")
    query = (
        select(entries.c.idempotency_key, holds.c.entry_id, holds.c.amount, holds.c.timeout_at,
               dest.c.program, dest.c.owner, dest.c.kind, hold_resolutions.c.outcome,
               hold_resolutions.c.posted)
        .select_from(
            holds.join(entries, entries.c.id == holds.c.entry_id)
            .join(wallet, wallet.c.id == holds.c.wallet_account_id)
            .join(dest, dest.c.id == holds.c.destination_account_id)
            .outerjoin(hold_resolutions, hold_resolutions.c.hold_entry_id == holds.c.entry_id)
        )
        .where(wallet.c.program == program, wallet.c.owner == customer_id)
        .order_by(holds.c.timeout_at, holds.c.entry_id)
    )
    if pending_only:
        query = query.where(hold_resolutions.c.hold_entry_id.is_(None))
    return [
        HoldView(r[0], int(r[1]), int(r[2]), _aware(r[3]), AccountRef(r[4], r[5], r[6]),
                 r[7] or "pending", int(r[8] or 0))
        for r in conn.execute(query)
    ]


def entry_by_key(conn: Connection, idempotency_key: str) -> EntryView | None:
    row = conn.execute(
        select(entries).where(entries.c.idempotency_key == idempotency_key)
    ).first()
    if row is None:
        return None
    debit = accounts.alias("debit")
    credit = accounts.alias("credit")
    leg_rows = conn.execute(
        select(debit.c.program, debit.c.owner, debit.c.kind, credit.c.program, credit.c.owner,
               credit.c.kind, legs.c.amount)
        .select_from(
            legs.join(debit, debit.c.id == legs.c.debit_account_id)
            .join(credit, and_(credit.c.id == legs.c.credit_account_id))
        )
        .where(legs.c.entry_id == row.id)
        .order_by(legs.c.leg_no)
    ).all()
    return EntryView(
        entry_id=int(row.id), idempotency_key=row.idempotency_key, kind=row.kind,
        status=row.status, program=row.program, customer_id=row.customer_id,
        amount=row.amount, reject_code=row.reject_code, reason=Reason.from_json(row.reason),
        reverses_entry_id=row.reverses_entry_id, target_entry_id=row.target_entry_id,
        created_at=_aware(row.created_at),
        legs=tuple((AccountRef(a, b, c), AccountRef(d, e, f), int(g))
                   for a, b, c, d, e, f, g in leg_rows),
    )
