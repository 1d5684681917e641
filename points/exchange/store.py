"""The exchange's SQL: row helpers shared by the desks, the swap and link reads and writes,
the quote rows, and the operations look-ups of the CLI.

The desks (points/exchange/*_desk.py) decide; what they read and write goes through here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Select,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from points import jsonfast, swap_saga
from points import partners as pc
from points.db import insert_ignore
from points.exchange.tables import partner_links, swap_quotes, swap_replies, swaps
from points.ledger.tables import entries
from points.ports import OutboundMessage
from points.refusals import refusals

__all__ = [
    "COUNTED",
    "OPEN",
    "OpenState",
    "OpsFilter",
    "aware",
    "bounded_id",
    "customer_swap",
    "customer_swaps",
    "dialect_insert",
    "due_swaps",
    "find_links",
    "find_swaps",
    "insert_ignore",
    "insert_quotes",
    "insert_swap_replies",
    "insert_swaps",
    "link_refusals",
    "link_row",
    "lock_swaps",
    "member_link",
    "open_state",
    "outbox_row",
    "quote_from_row",
    "quote_to_row",
    "replies_of",
    "set_link_status",
    "swap_entry_keys",
    "swap_from_row",
    "swap_row",
    "swap_to_row",
    "update_swaps",
    "upsert",
]

#: The saga states of a swap still waiting for its partner (the deadline timer's).
OPEN = ("requested", "pending")
#: The saga states whose points count against a customer's swap limits.
COUNTED = ("requested", "pending", "completed")


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
# unpacked by json_to_recordset (the pattern of points/inbox.py), one statement per table per
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


def outbox_row(message: OutboundMessage, dedupe_key: str) -> dict[str, Any]:
    """An outbox row for a signed partner request: exactly these bytes and headers."""
    return {
        "topic": message.topic,
        "message_key": message.key,
        "message_value": message.value,
        "headers": {k: v.decode("ascii") for k, v in message.headers},
        "dedupe_key": dedupe_key,
    }


# ------------------------------------------------------------------------- quotes and swaps


def quote_to_row(customer_id: str, q: pc.Quote) -> dict[str, Any]:
    return {
        "quote_id": q.quote_id,
        "customer_id": customer_id,
        "partner_id": q.partner_id,
        "rate_version": q.rate_version,
        "points": q.points,
        "fee_points": q.fee_points,
        "partner_units": q.partner_units,
        "rate_num": q.rate_num,
        "rate_den": q.rate_den,
        "quoted_at": q.quoted_at,
        "expires_at": q.expires_at,
    }


def quote_from_row(row: Any) -> pc.Quote:
    return pc.Quote(
        quote_id=row["quote_id"],
        partner_id=row["partner_id"],
        rate_version=row["rate_version"],
        points=int(row["points"]),
        fee_points=int(row["fee_points"]),
        partner_units=int(row["partner_units"]),
        rate_num=int(row["rate_num"]),
        rate_den=int(row["rate_den"]),
        quoted_at=aware(row["quoted_at"]),
        expires_at=aware(row["expires_at"]),
    )


def insert_quotes(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store quotes (:func:`quote_to_row`), one statement. It is atomic on its own, so it runs
    in autocommit: that saves the BEGIN and COMMIT round trips a transaction would add around
    it (the insert still commits). ``conn`` is a connection outside any transaction."""
    insert_ignore(conn.execution_options(isolation_level="AUTOCOMMIT"), swap_quotes, list(rows))


def _open_state_statement() -> Select[Any]:
    """:func:`open_state`'s one read, built once (building it per call cost more than running
    it): per quote id (``:quote_ids``), the quote's columns, the swap opened from it (or
    NULLs), the linked member id of the quote's customer at its partner, and that customer's
    points swapped to it since ``:day`` and since ``:year`` (pending and completed swaps)."""
    q, s, u, link = swap_quotes, swaps.alias("s"), swaps.alias("u"), partner_links
    day = bindparam("day", type_=DateTime(timezone=True))
    year = bindparam("year", type_=DateTime(timezone=True))
    usage_of = (
        u.c.customer_id == q.c.customer_id,
        u.c.partner_id == q.c.partner_id,
        u.c.status.in_(COUNTED),
        u.c.requested_at >= year,
    )
    today = func.coalesce(func.sum(case((u.c.requested_at >= day, u.c.points), else_=0)), 0)
    return (
        select(
            *q.c,
            *s.c,
            link.c.partner_member_id,
            select(today).where(*usage_of).scalar_subquery(),
            select(func.coalesce(func.sum(u.c.points), 0)).where(*usage_of).scalar_subquery(),
        )
        .select_from(
            q.outerjoin(s, s.c.quote_id == q.c.quote_id).outerjoin(
                link,
                and_(
                    link.c.customer_id == q.c.customer_id,
                    link.c.partner_id == q.c.partner_id,
                    link.c.status == "linked",
                ),
            )
        )
        .where(q.c.quote_id.in_(bindparam("quote_ids", expanding=True)))
    )


_OPEN_STATE = _open_state_statement()
_QUOTE_KEYS = tuple(c.name for c in swap_quotes.c)
_SWAP_KEYS = tuple(c.name for c in swaps.c)
_SWAP_AT = len(_QUOTE_KEYS)
_LINK_AT = _SWAP_AT + len(_SWAP_KEYS)


@dataclass(frozen=True, slots=True)
class OpenState:
    """What accepting quotes needs (:func:`open_state`)."""

    #: the ``swap_quotes`` rows by quote id
    quotes: dict[str, Mapping[str, Any]]
    #: the swap already opened from a quote, by quote id
    existing: dict[str, swap_saga.Swap]
    #: the quote's customer's linked member id at the quote's partner, by (customer, partner)
    links: dict[tuple[str, str], str]
    #: points that customer swapped out to that partner today and this year, same key
    usage: dict[tuple[str, str], tuple[int, int]]


def open_state(
    conn: Connection, quote_ids: Sequence[str], day: datetime, year: datetime
) -> OpenState:
    """What accepting these quotes needs, in ONE statement: per quote id its ``swap_quotes``
    row, the swap already opened from it, the customer's linked member id at the quote's
    partner, and the points that customer swapped out to that partner since ``day`` and since
    ``year`` (pending and completed swaps counted).

    The link and the usage are only ever used for an order by the quote's own customer, so
    reading them for the quote's customer is all that is needed. A quote id without a quote
    row (unknown, or a forged id) costs one more look-up, for a swap opened from it (none is:
    swaps come from stored quotes)."""
    state = OpenState({}, {}, {}, {})
    if not quote_ids:
        return state
    rows = conn.execute(_OPEN_STATE, {"quote_ids": list(quote_ids), "day": day, "year": year})
    for r in rows:
        quote = dict(zip(_QUOTE_KEYS, r[:_SWAP_AT], strict=True))
        state.quotes[quote["quote_id"]] = quote
        if r[_SWAP_AT] is not None:
            state.existing[quote["quote_id"]] = swap_from_row(
                dict(zip(_SWAP_KEYS, r[_SWAP_AT:_LINK_AT], strict=True))
            )
        pair = (str(quote["customer_id"]), str(quote["partner_id"]))
        member, today, this_year = r[_LINK_AT:]
        if member is not None:
            state.links[pair] = str(member)
        state.usage[pair] = (int(today or 0), int(this_year or 0))
    missing = [i for i in quote_ids if i not in state.quotes]
    if missing:
        found = conn.execute(select(swaps).where(swaps.c.quote_id.in_(missing)))
        for m in found.mappings():
            state.existing[m["quote_id"]] = swap_from_row(m)
    return state


def customer_swap(
    conn: Connection, customer_id: str, swap_id: str, *, lock: bool = False
) -> swap_saga.Swap | None:
    """The swap, if it is this customer's; ``lock``: ``FOR UPDATE``."""
    query = select(swaps).where(swaps.c.swap_id == swap_id, swaps.c.customer_id == customer_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return None if row is None else swap_from_row(row)


def customer_swaps(conn: Connection, customer_id: str, limit: int) -> list[swap_saga.Swap]:
    """A customer's swaps, newest first."""
    rows = conn.execute(
        select(swaps)
        .where(swaps.c.customer_id == customer_id)
        .order_by(swaps.c.requested_at.desc(), swaps.c.swap_id)
        .limit(limit)
    ).mappings()
    return [swap_from_row(r) for r in rows]


def lock_swaps(conn: Connection, swap_ids: Sequence[str]) -> list[swap_saga.Swap]:
    """The swaps with these ids, locked ``FOR UPDATE`` in id order (no deadlock between two
    batches locking some of the same swaps)."""
    rows = conn.execute(
        select(swaps).where(swaps.c.swap_id.in_(sorted(set(swap_ids)))).order_by(swaps.c.swap_id)
        .with_for_update()
    ).mappings()
    return [swap_from_row(r) for r in rows]


def due_swaps(conn: Connection, now: datetime, limit: int) -> list[swap_saga.Swap]:
    """Open swaps whose deadline has passed, oldest deadline first, locked ``FOR UPDATE``;
    rows another transaction holds are skipped, not waited for."""
    rows = conn.execute(
        select(swaps)
        .where(swaps.c.status.in_(OPEN), swaps.c.deadline_at <= now)
        .order_by(swaps.c.deadline_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).mappings().all()
    return [swap_from_row(r) for r in rows]


# ------------------------------------------------------------------------------ member links


def member_link(
    conn: Connection, customer_id: str, partner_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    """The customer's ``partner_links`` row at the partner; ``lock``: ``FOR UPDATE``."""
    query = select(partner_links).where(
        partner_links.c.customer_id == customer_id, partner_links.c.partner_id == partner_id
    )
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def set_link_status(
    conn: Connection, customer_id: str, partner_id: str, status: str, reason: str | None,
    now: datetime,
) -> None:
    conn.execute(
        update(partner_links)
        .where(partner_links.c.customer_id == customer_id,
               partner_links.c.partner_id == partner_id)
        .values(status=status, reason=reason, updated_at=now)
    )


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
