"""Read queries behind the API: short, indexed, on the caller's connection, both databases.

The balance is the hot path: ONE statement using the ``(program, owner, kind)`` unique index
on accounts, the balances primary key and the open-lots index for what expires soon.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    case,
    func,
    inspect,
    literal,
    or_,
    select,
)

from points.earning.tables import customer_profiles, customer_rule_state, earning_records
from points.ledger.model import BANK, Reason
from points.ledger.tables import accounts, balances, entries, legs, lots

__all__ = [
    "ActivityEntry",
    "BalanceView",
    "activity_page",
    "balance",
    "earning_records_for",
    "has_tables",
    "profile_json",
    "rule_state_json",
    "source_events_of",
]

CUSTOMER_KINDS = ("wallet", "held", "receivable")


@dataclass(frozen=True, slots=True)
class BalanceView:
    available: int
    held: int
    debt: int
    expiring_30d: int
    expiring_90d: int


def _time(conn: Connection, value: datetime) -> datetime:
    # SQLite keeps UTC wall time without a zone (see points.ledger.queries).
    if conn.dialect.name == "sqlite":
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _open_lots(bound: str) -> Any:
    return (
        select(func.coalesce(func.sum(lots.c.remaining), 0))
        .where(
            lots.c.account_id == accounts.c.id,
            lots.c.remaining > 0,
            lots.c.expires_at <= bindparam(bound, type_=lots.c.expires_at.type),
        )
        .scalar_subquery()
    )


# Built once: SQLAlchemy caches the compiled form, psycopg prepares it after a few runs.
_BALANCE = (
    select(
        accounts.c.kind,
        balances.c.balance,
        case((accounts.c.kind == "wallet", _open_lots("soon30")), else_=literal(0)),
        case((accounts.c.kind == "wallet", _open_lots("soon90")), else_=literal(0)),
    )
    .select_from(accounts.join(balances, balances.c.account_id == accounts.c.id))
    .where(
        accounts.c.program == bindparam("program"),
        accounts.c.owner == bindparam("customer"),
        accounts.c.kind.in_(CUSTOMER_KINDS),
    )
)


def balance(conn: Connection, customer_id: str, *, now: datetime) -> BalanceView:
    """Available, held, debt, and points expiring within 30 and 90 days, in one statement."""
    rows = conn.execute(
        _BALANCE,
        {
            "program": BANK,
            "customer": customer_id,
            "soon30": _time(conn, now + timedelta(days=30)),
            "soon90": _time(conn, now + timedelta(days=90)),
        },
    ).all()
    by_kind: dict[str, tuple[int, int, int]] = {
        str(kind): (int(amount), int(s30), int(s90)) for kind, amount, s30, s90 in rows
    }
    wallet = by_kind.get("wallet", (0, 0, 0))
    return BalanceView(
        available=wallet[0],
        held=by_kind.get("held", (0, 0, 0))[0],
        debt=-by_kind.get("receivable", (0, 0, 0))[0],
        expiring_30d=wallet[1],
        expiring_90d=wallet[2],
    )


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    entry_id: int
    kind: str
    created_at: datetime
    wallet_delta: int
    held_delta: int
    debt_delta: int
    reason: Reason
    reverses_entry_id: int | None
    target_entry_id: int | None


def activity_page(
    conn: Connection, customer_id: str, *, before_entry_id: int | None, limit: int
) -> tuple[list[ActivityEntry], bool]:
    """The customer's committed entries, newest first, strictly before the cursor.

    Returns the page and whether older entries exist. Ledger rows are append-only, so entries
    read by id are final whatever commits in between.
    """
    account_rows = conn.execute(
        select(accounts.c.id, accounts.c.kind).where(
            accounts.c.program == BANK,
            accounts.c.owner == customer_id,
            accounts.c.kind.in_(CUSTOMER_KINDS),
        )
    ).all()
    kinds = {int(i): str(k) for i, k in account_rows}
    if not kinds:
        return [], False
    ids = list(kinds)
    touching = or_(legs.c.debit_account_id.in_(ids), legs.c.credit_account_id.in_(ids))
    if before_entry_id is not None:
        touching = and_(touching, legs.c.entry_id < before_entry_id)
    page_ids = [
        int(r[0])
        for r in conn.execute(
            select(legs.c.entry_id)
            .where(touching)
            .group_by(legs.c.entry_id)
            .order_by(legs.c.entry_id.desc())
            .limit(limit + 1)
        )
    ]
    more = len(page_ids) > limit
    page_ids = page_ids[:limit]
    if not page_ids:
        return [], False
    effect: dict[int, dict[str, int]] = {
        e: {"wallet": 0, "held": 0, "receivable": 0} for e in page_ids
    }
    for entry_id, debit, credit, amount in conn.execute(
        select(legs.c.entry_id, legs.c.debit_account_id, legs.c.credit_account_id,
               legs.c.amount).where(legs.c.entry_id.in_(page_ids))
    ):
        per = effect[int(entry_id)]
        if debit in kinds:
            per[kinds[debit]] -= int(amount)
        if credit in kinds:
            per[kinds[credit]] += int(amount)
    headers = {
        int(r[0]): r
        for r in conn.execute(
            select(entries.c.id, entries.c.kind, entries.c.created_at, entries.c.reason,
                   entries.c.reverses_entry_id, entries.c.target_entry_id)
            .where(entries.c.id.in_(page_ids))
        )
    }
    out = []
    for entry_id in page_ids:
        r = headers[entry_id]
        per = effect[entry_id]
        created = r[2] if r[2].tzinfo else r[2].replace(tzinfo=UTC)
        out.append(ActivityEntry(
            entry_id=entry_id, kind=str(r[1]), created_at=created,
            wallet_delta=per["wallet"], held_delta=per["held"], debt_delta=-per["receivable"],
            reason=Reason.from_json(r[3]), reverses_entry_id=r[4], target_entry_id=r[5],
        ))
    return out, more


def earning_records_for(
    conn: Connection, customer_id: str, event_ids: Iterable[str]
) -> dict[str, Mapping[str, Any]]:
    """Earning records of these events that belong to the customer (never another's)."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(earning_records.c.event_id, earning_records.c.record).where(
            earning_records.c.event_id.in_(wanted),
            earning_records.c.customer_id == customer_id,
        )
    )
    return {str(k): v for k, v in rows}


def source_events_of(conn: Connection, entry_ids: Iterable[int]) -> dict[int, str | None]:
    """The source event of each entry (for clawbacks: the purchase they take back from)."""
    wanted = sorted(set(entry_ids))
    if not wanted:
        return {}
    rows = conn.execute(select(entries.c.id, entries.c.reason).where(entries.c.id.in_(wanted)))
    return {int(i): Reason.from_json(r).source_event for i, r in rows}


def rule_state_json(conn: Connection, customer_id: str) -> Mapping[str, Any] | None:
    value = conn.execute(
        select(customer_rule_state.c.state).where(
            customer_rule_state.c.customer_id == customer_id
        )
    ).scalar_one_or_none()
    return None if value is None else dict(value)


def profile_json(conn: Connection, customer_id: str) -> Mapping[str, Any] | None:
    value = conn.execute(
        select(customer_profiles.c.profile).where(customer_profiles.c.customer_id == customer_id)
    ).scalar_one_or_none()
    return None if value is None else dict(value)


def has_tables(conn: Connection, *tables: Table) -> bool:
    names = set(inspect(conn).get_table_names())
    return all(t.name in names for t in tables)
