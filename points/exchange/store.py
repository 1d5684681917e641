"""Row helpers shared by the exchange services: upserts, swap rows <-> ``points.swaps.Swap``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, text, update
from sqlalchemy.dialects import postgresql, sqlite

from points import jsonfast
from points import swaps as saga
from points.db import insert_ignore
from points.exchange.tables import swap_replies, swaps

__all__ = [
    "aware",
    "bounded_id",
    "dialect_insert",
    "insert_ignore",
    "insert_swap_replies",
    "insert_swaps",
    "swap_from_row",
    "swap_to_row",
    "update_swaps",
    "upsert",
]


def aware(value: datetime) -> datetime:
    """SQLite returns naive UTC wall times; PostgreSQL aware ones."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def bounded_id(prefix: str, *parts: str, limit: int = 64) -> str:
    """``prefix`` + parts joined by ':' when it fits ``limit``, else a digest of them."""
    plain = ":".join((prefix, *parts))
    if len(plain) <= limit:
        return plain
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    return f"{prefix}:{digest}"


def dialect_insert(conn: Connection, table: Table) -> Any:
    """``INSERT`` with the dialect's ``ON CONFLICT`` clauses (PostgreSQL or SQLite)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(conn.dialect.name)  # pragma: no cover


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
) -> None:
    """Insert rows, or overwrite every non-key column of the existing row."""
    if not rows:
        return
    stmt = dialect_insert(conn, table)
    columns = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: getattr(stmt.excluded, c) for c in columns}
    )
    conn.execute(stmt, list(rows))


def swap_from_row(row: Any) -> saga.Swap:
    return saga.Swap(
        swap_id=row["swap_id"],
        customer_id=row["customer_id"],
        partner_id=row["partner_id"],
        partner_member_id=row["partner_member_id"],
        points=int(row["points"]),
        fee_points=int(row["fee_points"]),
        partner_units=int(row["partner_units"]),
        quote_id=row["quote_id"],
        rate_version=row["rate_version"],
        requested_at=aware(row["requested_at"]),
        deadline_at=aware(row["deadline_at"]),
        status=saga.SwapStatus(row["status"]),
        reason=row["reason"],
        partner_reference=row["partner_reference"],
        resolved_by=row["resolved_by"],
        updated_at=aware(row["updated_at"]),
    )


def swap_to_row(swap: saga.Swap) -> dict[str, Any]:
    return {
        "swap_id": swap.swap_id,
        "quote_id": swap.quote_id,
        "customer_id": swap.customer_id,
        "partner_id": swap.partner_id,
        "partner_member_id": swap.partner_member_id,
        "points": swap.points,
        "fee_points": swap.fee_points,
        "partner_units": swap.partner_units,
        "rate_version": swap.rate_version,
        "requested_at": swap.requested_at,
        "deadline_at": swap.deadline_at,
        "status": str(swap.status),
        "reason": swap.reason[:500],
        "partner_reference": swap.partner_reference,
        "resolved_by": swap.resolved_by,
        "updated_at": swap.updated_at or swap.requested_at,
    }


# Set-based writes of the swap tables for PostgreSQL: the batch travels as ONE JSON parameter
# unpacked by json_to_recordset (the pattern of points/intake.py), one statement per table per
# batch instead of an executemany. SQLite (unit tests) keeps the executemany.

_SWAP_COLUMNS = (
    "swap_id varchar, quote_id varchar, customer_id varchar, partner_id varchar, "
    "partner_member_id varchar, points bigint, fee_points bigint, partner_units bigint, "
    "rate_version varchar, requested_at timestamptz, deadline_at timestamptz, status varchar, "
    "reason varchar, partner_reference varchar, resolved_by varchar, updated_at timestamptz"
)
_SWAPS_INSERT_PG = text(
    "INSERT INTO swaps (swap_id, quote_id, customer_id, partner_id, partner_member_id, points, "
    "fee_points, partner_units, rate_version, requested_at, deadline_at, status, reason, "
    "partner_reference, resolved_by, updated_at) "
    "SELECT r.swap_id, r.quote_id, r.customer_id, r.partner_id, r.partner_member_id, r.points, "
    "r.fee_points, r.partner_units, r.rate_version, r.requested_at, r.deadline_at, r.status, "
    "r.reason, r.partner_reference, r.resolved_by, r.updated_at "
    f"FROM json_to_recordset(CAST(:rows AS json)) AS r({_SWAP_COLUMNS})"
)
_SWAPS_UPDATE_PG = text(
    "UPDATE swaps AS s SET status = r.status, reason = r.reason, "
    "partner_reference = r.partner_reference, resolved_by = r.resolved_by, "
    "updated_at = r.updated_at "
    "FROM json_to_recordset(CAST(:rows AS json)) AS r(swap_id varchar, status varchar, "
    "reason varchar, partner_reference varchar, resolved_by varchar, updated_at timestamptz) "
    "WHERE s.swap_id = r.swap_id"
)
_REPLIES_INSERT_PG = text(
    "INSERT INTO swap_replies (swap_id, partner_id, event_id, event_type, outcome, reason, "
    "detail, points, partner_units, partner_reference, at) "
    "SELECT r.swap_id, r.partner_id, r.event_id, r.event_type, r.outcome, r.reason, r.detail, "
    "r.points, r.partner_units, r.partner_reference, r.at "
    "FROM json_to_recordset(CAST(:rows AS json)) AS r(swap_id varchar, partner_id varchar, "
    "event_id varchar, event_type varchar, outcome varchar, reason varchar, detail text, "
    "points bigint, partner_units bigint, partner_reference varchar, at timestamptz)"
)
_UPDATED = ("swap_id", "status", "reason", "partner_reference", "resolved_by", "updated_at")


def insert_swaps(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new swap rows (``swap_to_row``); one statement on PostgreSQL."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(_SWAPS_INSERT_PG, {"rows": jsonfast.dumps(list(rows))})
    else:
        conn.execute(swaps.insert(), list(rows))


def update_swaps(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store the saga state of swaps already in the table (status, reason, reference,
    resolved_by, updated_at); one statement on PostgreSQL."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        payload = [{k: r[k] for k in _UPDATED} for r in rows]
        conn.execute(_SWAPS_UPDATE_PG, {"rows": jsonfast.dumps(payload)})
        return
    conn.execute(
        update(swaps)
        .where(swaps.c.swap_id == bindparam("b_swap_id"))
        .values(**{k: bindparam(f"b_{k}") for k in _UPDATED if k != "swap_id"}),
        [{f"b_{k}": r[k] for k in _UPDATED} for r in rows],
    )


def insert_swap_replies(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record swap inputs (replies, timer) in ``swap_replies``; one statement on PostgreSQL."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(_REPLIES_INSERT_PG, {"rows": jsonfast.dumps(list(rows))})
    else:
        conn.execute(swap_replies.insert(), list(rows))
