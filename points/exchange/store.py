"""Row helpers shared by the exchange services: upserts, swap rows <-> ``points.swap_saga.Swap``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from points import jsonfast, swap_saga
from points.db import insert_ignore
from points.exchange.tables import partner_links, swap_replies, swaps
from points.ledger.tables import entries
from points.refusals import refusals

__all__ = [
    "OpsFilter",
    "aware",
    "bounded_id",
    "dialect_insert",
    "find_links",
    "find_swaps",
    "insert_ignore",
    "insert_swap_replies",
    "insert_swaps",
    "link_refusals",
    "link_row",
    "replies_of",
    "swap_entry_keys",
    "swap_from_row",
    "swap_row",
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


def swap_from_row(row: Any) -> swap_saga.Swap:
    return swap_saga.Swap(
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
        status=swap_saga.SwapStatus(row["status"]),
        reason=row["reason"],
        partner_reference=row["partner_reference"],
        resolved_by=row["resolved_by"],
        updated_at=aware(row["updated_at"]),
    )


def swap_to_row(swap: swap_saga.Swap) -> dict[str, Any]:
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


# ------------------------------------------------------------------ operations look-ups (CLI)


@dataclass(frozen=True, slots=True)
class OpsFilter:
    """What ``swaps list`` / ``links list`` ask for; None means any."""

    customer_id: str | None = None
    partner_id: str | None = None
    state: str | None = None
    reason: str | None = None
    limit: int = 100


def find_swaps(conn: Connection, wanted: OpsFilter) -> list[dict[str, Any]]:
    """Swap rows, newest first, filtered by customer, partner, saga state and reason code
    (see :func:`_reason_is`)."""
    query = _filtered(swaps, wanted).order_by(swaps.c.requested_at.desc(), swaps.c.swap_id)
    return [dict(r) for r in conn.execute(query.limit(wanted.limit)).mappings()]


def _filtered(table: Table, wanted: OpsFilter) -> Any:
    """``SELECT *`` from a swaps-like table (customer_id, partner_id, status, reason) with
    the operations filters that are given."""
    given = [(table.c.customer_id, wanted.customer_id), (table.c.partner_id, wanted.partner_id),
             (table.c.status, wanted.state)]
    query = select(table).where(*(column == value for column, value in given
                                  if value is not None))
    if wanted.reason is None:
        return query
    return query.where(_reason_is(table.c.reason, wanted.reason))


def _reason_is(column: Any, code: str) -> Any:
    """A reason text is ``code``, ``code: detail`` or ``kind: code[: detail]`` (for example
    ``partner_rejected: limit_exceeded``): a filter on either code matches it."""
    return or_(column == code, column.like(f"{code}:%"), column.like(f"%: {code}"),
               column.like(f"%: {code}:%"))


def swap_row(conn: Connection, swap_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(swaps).where(swaps.c.swap_id == swap_id)).mappings().first()
    return None if row is None else dict(row)


def replies_of(conn: Connection, swap_id: str) -> list[dict[str, Any]]:
    """Everything the swap saw (partner replies, the timer, the customer), in order."""
    rows = conn.execute(
        select(swap_replies).where(swap_replies.c.swap_id == swap_id)
        .order_by(swap_replies.c.at, swap_replies.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def swap_entry_keys(conn: Connection, swap_id: str) -> list[str]:
    """The ledger keys of a swap's entries (holds and their post / void), in entry order."""
    prefix = f"swap:{swap_id}:"
    rows = conn.execute(
        select(entries.c.idempotency_key)
        .where(entries.c.idempotency_key.like(prefix.replace("_", "\\_") + "%", escape="\\"))
        .order_by(entries.c.id)
    ).scalars()
    return [str(k) for k in rows]


def find_links(conn: Connection, wanted: OpsFilter) -> list[dict[str, Any]]:
    """Member links, latest change first, filtered like :func:`find_swaps`."""
    t = partner_links
    query = _filtered(t, wanted).order_by(t.c.updated_at.desc(), t.c.customer_id,
                                          t.c.partner_id)
    return [dict(r) for r in conn.execute(query.limit(wanted.limit)).mappings()]


def link_row(conn: Connection, link_or_request_id: str) -> dict[str, Any] | None:
    """A member link by its request id, or by ``CUSTOMER_ID/PARTNER_ID``."""
    row = conn.execute(
        select(partner_links).where(partner_links.c.request_id == link_or_request_id)
    ).mappings().first()
    if row is None and "/" in link_or_request_id:
        customer_id, partner_id = link_or_request_id.rsplit("/", 1)
        row = conn.execute(
            select(partner_links).where(partner_links.c.customer_id == customer_id,
                                        partner_links.c.partner_id == partner_id)
        ).mappings().first()
    return None if row is None else dict(row)


def link_refusals(conn: Connection, link: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Refusals about this link: the bank's own (``subject_id`` = the request id) and the
    partner replies that decided nothing (``link-reply:<partner>:<event id>``)."""
    reply_prefix = f"link-reply:{link['partner_id']}:"
    rows = conn.execute(
        select(refusals).where(
            refusals.c.subject == "member_link",
            refusals.c.customer_id == link["customer_id"],
            or_(refusals.c.subject_id == link["request_id"],
                func.substr(refusals.c.dedupe_key, 1, len(reply_prefix)) == reply_prefix),
        ).order_by(refusals.c.at, refusals.c.id)
    ).mappings()
    return [dict(r) for r in rows]
