"""Row helpers shared by the exchange services: upserts, swap rows <-> ``points.swaps.Swap``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from points import swaps as saga

__all__ = [
    "aware",
    "bounded_id",
    "insert_ignore",
    "swap_from_row",
    "swap_to_row",
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


def _insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(conn.dialect.name)  # pragma: no cover


def insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows, skipping those whose primary or unique key exists (replays)."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
) -> None:
    """Insert rows, or overwrite every non-key column of the existing row."""
    if not rows:
        return
    stmt = _insert(conn, table)
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
