"""The SQL the operations CLI needs beyond the ledger's public API, in the caller's connection.

Reads over the ledger tables that the ledger API offers per customer only (pending holds of
everyone, lots due for expiry per customer), and the operations tables: maker-checker
requests (``adjustment_requests``), dead letters and the outbox rows that replay them. Like
the ledger's repositories, nothing here commits: the command owns the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, String, cast, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from points.dead_letters import dead_letters
from points.inbox import inbound_events
from points.ledger import AccountRef
from points.ledger.tables import accounts, entries, hold_resolutions, holds, lots
from points.operations_tables import adjustment_requests
from points.outbox import outbox_table

__all__ = [
    "REPLAY_PREFIX",
    "AdjustmentRequest",
    "DeadLetter",
    "DueLots",
    "PendingHold",
    "already_accepted",
    "count_due_holds",
    "count_due_lots",
    "customer_known",
    "dead_letters_by_ids",
    "decide_request",
    "due_lots_by_customer",
    "list_dead_letters",
    "list_requests",
    "pending_holds",
    "queue_replays",
    "request_by_id",
    "submit_request",
]

REPLAY_PREFIX: Final = "dlq-replay:"
"""Outbox dedupe key of a dead letter's replay: one replay per letter, however often asked."""


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _time(conn: Connection, value: datetime) -> Any:
    # SQLite stores UTC wall time as text (what the ledger writes); compare in that form.
    if conn.dialect.name == "sqlite":
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _insert(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# --- ledger reads ---------------------------------------------------------------------------


def customer_known(conn: Connection, program: str, customer_id: str) -> bool:
    """Whether the customer has any account in the program (a typo check before reads)."""
    row = conn.execute(
        select(accounts.c.id).where(
            accounts.c.program == program, accounts.c.owner == customer_id,
            accounts.c.kind.in_(("wallet", "held", "receivable")),
        ).limit(1)
    ).first()
    return row is not None


@dataclass(frozen=True, slots=True)
class PendingHold:
    hold_key: str
    customer_id: str
    amount: int
    timeout_at: datetime
    destination: AccountRef
    created_at: datetime

    def overdue(self, now: datetime) -> bool:
        return self.timeout_at <= now

    def to_json(self, now: datetime) -> dict[str, object]:
        return {
            "hold_key": self.hold_key,
            "customer_id": self.customer_id,
            "amount": self.amount,
            "timeout_at": self.timeout_at,
            "overdue": self.overdue(now),
            "destination": f"{self.destination.owner}/{self.destination.kind}",
            "created_at": self.created_at,
        }


def pending_holds(conn: Connection, program: str, customer_id: str | None, *,
                  limit: int, due_by: datetime | None = None) -> list[PendingHold]:
    """Unresolved holds, soonest timeout first; of one customer, or of everyone."""
    wallet = accounts.alias("wallet")
    dest = accounts.alias("dest")
    query = (
        select(entries.c.idempotency_key, wallet.c.owner, holds.c.amount, holds.c.timeout_at,
               dest.c.program, dest.c.owner, dest.c.kind, entries.c.created_at)
        .select_from(
            holds.join(entries, entries.c.id == holds.c.entry_id)
            .join(wallet, wallet.c.id == holds.c.wallet_account_id)
            .join(dest, dest.c.id == holds.c.destination_account_id)
            .outerjoin(hold_resolutions, hold_resolutions.c.hold_entry_id == holds.c.entry_id)
        )
        .where(hold_resolutions.c.hold_entry_id.is_(None), wallet.c.program == program)
        .order_by(holds.c.timeout_at, holds.c.entry_id)
        .limit(limit)
    )
    if customer_id is not None:
        query = query.where(wallet.c.owner == customer_id)
    if due_by is not None:
        query = query.where(holds.c.timeout_at <= _time(conn, due_by))
    return [
        PendingHold(r[0], r[1], int(r[2]), aware(r[3]), AccountRef(r[4], r[5], r[6]),
                    aware(r[7]))
        for r in conn.execute(query)
    ]


def count_due_holds(conn: Connection, program: str, as_of: datetime) -> int:
    """Pending holds of ``program`` whose timeout is at or before ``as_of`` (what ExpireHolds
    voids)."""
    query = (
        select(func.count())
        .select_from(
            holds.join(entries, entries.c.id == holds.c.entry_id)
            .outerjoin(hold_resolutions, hold_resolutions.c.hold_entry_id == holds.c.entry_id)
        )
        .where(hold_resolutions.c.hold_entry_id.is_(None), entries.c.program == program,
               holds.c.timeout_at <= _time(conn, as_of))
    )
    return int(conn.execute(query).scalar_one())


@dataclass(frozen=True, slots=True)
class DueLots:
    """What an expiry at ``as_of`` takes from one customer."""

    customer_id: str
    lots: int
    points: int
    earliest: datetime
    latest: datetime

    def to_json(self) -> dict[str, object]:
        return {"customer_id": self.customer_id, "lots": self.lots, "points": self.points,
                "earliest_expiry": self.earliest, "latest_expiry": self.latest}


def _due_lots_where(conn: Connection, program: str, as_of: datetime) -> list[Any]:
    return [accounts.c.program == program, accounts.c.kind == "wallet", lots.c.remaining > 0,
            lots.c.expires_at <= _time(conn, as_of)]


def due_lots_by_customer(conn: Connection, program: str, as_of: datetime) -> list[DueLots]:
    """Per customer, the lots (and points left in them) that ExpireLots at ``as_of`` takes."""
    query = (
        select(accounts.c.owner, func.count(), func.sum(lots.c.remaining),
               func.min(lots.c.expires_at), func.max(lots.c.expires_at))
        .select_from(lots.join(accounts, accounts.c.id == lots.c.account_id))
        .where(*_due_lots_where(conn, program, as_of))
        .group_by(accounts.c.owner)
        .order_by(accounts.c.owner)
    )
    return [DueLots(r[0], int(r[1]), int(r[2]), _read_time(r[3]), _read_time(r[4]))
            for r in conn.execute(query)]


def count_due_lots(conn: Connection, program: str, as_of: datetime) -> int:
    query = (
        select(func.count())
        .select_from(lots.join(accounts, accounts.c.id == lots.c.account_id))
        .where(*_due_lots_where(conn, program, as_of))
    )
    return int(conn.execute(query).scalar_one())


def _read_time(value: Any) -> datetime:
    # An aggregate over a DateTime column comes back as text on SQLite.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return aware(value)


# --- maker-checker --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdjustmentRequest:
    id: int
    idempotency_key: str
    program: str
    customer_id: str
    delta: int
    reason: str
    requested_by: str
    requested_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None

    def same_request(self, program: str, customer_id: str, delta: int, reason: str,
                     requested_by: str) -> bool:
        return (self.program, self.customer_id, self.delta, self.reason, self.requested_by) == (
            program, customer_id, delta, reason, requested_by)

    def to_json(self) -> dict[str, object]:
        return {
            "request_id": self.id,
            "idempotency_key": self.idempotency_key,
            "program": self.program,
            "customer_id": self.customer_id,
            "delta": self.delta,
            "reason": self.reason,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
        }


def _request(row: Any) -> AdjustmentRequest:
    return AdjustmentRequest(
        id=int(row.id), idempotency_key=row.idempotency_key, program=row.program,
        customer_id=row.customer_id, delta=int(row.delta), reason=row.reason,
        requested_by=row.requested_by, requested_at=aware(row.requested_at),
        status=row.status, decided_by=row.decided_by,
        decided_at=None if row.decided_at is None else aware(row.decided_at),
    )


def submit_request(conn: Connection, *, key: str, program: str, customer_id: str, delta: int,
                   reason: str, operator: str, now: datetime) -> tuple[AdjustmentRequest, bool]:
    """Queue an adjustment for approval under ``key``; (the request, whether it is new).

    The key's uniqueness is the idempotency: a retry finds the first request, and the caller
    compares its fields to tell a replay from a conflict.
    """
    stmt = _insert(conn, adjustment_requests).values(
        idempotency_key=key, program=program, customer_id=customer_id, delta=delta,
        reason=reason, requested_by=operator, requested_at=now, status="pending",
    ).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(
        adjustment_requests.c.id)
    created = conn.execute(stmt).first() is not None
    row = conn.execute(
        select(adjustment_requests).where(adjustment_requests.c.idempotency_key == key)
    ).one()
    return _request(row), created


def request_by_id(conn: Connection, request_id: int, *, lock: bool = False
                  ) -> AdjustmentRequest | None:
    query = select(adjustment_requests).where(adjustment_requests.c.id == request_id)
    if lock and conn.dialect.name == "postgresql":
        # Two approvers racing: the second waits, then sees the first's decision.
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _request(row)


def decide_request(conn: Connection, request_id: int, *, status: str, operator: str,
                   now: datetime) -> bool:
    """Mark a pending request approved or rejected; False if it was no longer pending.

    The table's four-eyes CHECK refuses ``operator == requested_by`` whatever the caller
    checked before.
    """
    result = conn.execute(
        update(adjustment_requests)
        .where(adjustment_requests.c.id == request_id,
               adjustment_requests.c.status == "pending")
        .values(status=status, decided_by=operator, decided_at=now)
    )
    return result.rowcount == 1


def list_requests(conn: Connection, status: str | None, *, limit: int
                  ) -> list[AdjustmentRequest]:
    query = select(adjustment_requests).order_by(adjustment_requests.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(adjustment_requests.c.status == status)
    return [_request(row) for row in conn.execute(query)]


# --- dead letters and their replay ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    topic: str
    partition: int
    offset: int
    reason_code: str
    reason: str
    key: bytes | None
    value: bytes | None
    created_at: datetime
    replayed_by: str | None
    replayed_at: str | None

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def dedupe_key(self) -> str:
        return f"{REPLAY_PREFIX}{self.id}"

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "message_key": self.key,
            "message_size": len(self.value or b""),
            "created_at": self.created_at,
            "replayed_by": self.replayed_by,
            "replayed_at": self.replayed_at,
        }


def _letters_query(conn: Connection) -> Any:
    replay_key = literal(REPLAY_PREFIX, String) + cast(dead_letters.c.id, String)
    return (
        select(dead_letters, outbox_table.c.headers.label("replay_headers"))
        .select_from(
            dead_letters.outerjoin(outbox_table, outbox_table.c.dedupe_key == replay_key)
        )
        .order_by(dead_letters.c.id)
    )


def _letter(row: Any) -> DeadLetter:
    headers = row.replay_headers or {}
    return DeadLetter(
        id=int(row.id), topic=row.topic, partition=int(row.kafka_partition),
        offset=int(row.kafka_offset), reason_code=row.reason_code, reason=row.reason,
        key=row.message_key, value=row.message_value, created_at=aware(row.created_at),
        replayed_by=headers.get("dlq.replayed_by") if row.replay_headers is not None else None,
        replayed_at=headers.get("dlq.replayed_at") if row.replay_headers is not None else None,
    )


def list_dead_letters(conn: Connection, *, reason_code: str | None, topic: str | None,
                      limit: int, not_replayed: bool = False) -> list[DeadLetter]:
    query = _letters_query(conn).limit(limit)
    if reason_code is not None:
        query = query.where(dead_letters.c.reason_code == reason_code)
    if topic is not None:
        query = query.where(dead_letters.c.topic == topic)
    if not_replayed:
        query = query.where(outbox_table.c.id.is_(None))
    return [_letter(row) for row in conn.execute(query)]


def dead_letters_by_ids(conn: Connection, ids: Sequence[int]) -> list[DeadLetter]:
    if not ids:
        return []
    query = _letters_query(conn).where(dead_letters.c.id.in_(list(ids)))
    return [_letter(row) for row in conn.execute(query)]


def already_accepted(conn: Connection, letters: Sequence[DeadLetter]) -> set[int]:
    """Letters whose event id is in the inbox: refused by the rules *after* intake accepted
    them, so the worker would skip a replay as a duplicate."""
    by_event: dict[str, list[int]] = {}
    for letter in letters:
        try:
            body = json.loads(letter.value or b"")
        except ValueError:
            continue
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if isinstance(event_id, str):
            by_event.setdefault(event_id, []).append(letter.id)
    found: set[int] = set()
    ids = list(by_event)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for event_id in conn.execute(select(inbound_events.c.event_id)
                                     .where(inbound_events.c.event_id.in_(chunk))).scalars():
            found.update(by_event[event_id])
    return found


def queue_replays(conn: Connection, letters: Sequence[DeadLetter], *, operator: str,
                  now: datetime) -> set[int]:
    """Queue each letter's original bytes for its source topic; the ids queued now.

    One outbox row per letter, ever (``dlq-replay:<id>`` is unique): asking twice queues
    nothing the second time. The headers say who replayed what, when, and from where.
    """
    if not letters:
        return set()
    rows = [
        {
            "topic": letter.topic,
            "message_key": letter.key,
            "message_value": letter.value if letter.value is not None else b"",
            "headers": {
                "dlq.replay_of": str(letter.id),
                "dlq.replayed_by": operator,
                "dlq.replayed_at": now.isoformat(),
                "dlq.source": letter.source,
                "dlq.reason_code": letter.reason_code,
            },
            "dedupe_key": letter.dedupe_key,
        }
        for letter in letters
    ]
    stmt = (
        _insert(conn, outbox_table)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(outbox_table.c.dedupe_key)
    )
    queued = conn.execute(stmt, rows).scalars().all()
    return {int(key.removeprefix(REPLAY_PREFIX)) for key in queued}
