"""What one exchange transaction writes, and the one place that writes it.

Every desk (links, swaps, bank events, the partner events batch) plans its work into
:class:`Effects` — ledger operations, swap states, swap replies, inbound credits, referral work,
partner requests — and :func:`write_effects` applies it inside the caller's transaction,
returning the outbox rows to queue with it (the requests, then a ``points.ledger`` notice per
entry committed now).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from points import jsonfast, swap_saga
from points.exchange.referral_records import Work, write_work
from points.exchange.store import (
    insert_ignore,
    insert_swap_replies,
    swap_to_row,
    update_swaps,
)
from points.exchange.tables import inbound_swaps
from points.ledger import apply_batch
from points.ledger.model import (
    Applied,
    Clawback,
    Earn,
    Hold,
    Operation,
    OperationResult,
    PostHold,
    Reason,
    Rejected,
    VoidHold,
)

__all__ = ["Effects", "ledger_notes", "swap_reason", "write_effects"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Effects:
    """Everything one exchange transaction will write, planned before any write."""

    ops: list[Operation] = field(default_factory=list)
    #: the customer each operation belongs to, for its points.ledger notice
    op_customers: list[str] = field(default_factory=list)
    swaps: dict[str, swap_saga.Swap] = field(default_factory=dict)
    #: ids of the swaps whose state moved (written back)
    dirty: set[str] = field(default_factory=set)
    replies: list[dict[str, Any]] = field(default_factory=list)
    inbound: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    referral: Work = field(default_factory=Work)
    #: set by :func:`write_effects`: operations the ledger refused
    ledger_rejections: int = 0

    def add(self, op: Operation, customer_id: str) -> None:
        self.ops.append(op)
        self.op_customers.append(customer_id)

    def take_referral_work(self) -> None:
        """Move the referral work's ledger operations and partner requests into these
        effects (the work's rows, fees and refusals are written with it)."""
        work = self.referral
        for op, customer in zip(work.operations, work.op_customers, strict=True):
            self.add(op, customer)
        self.outbox.extend(work.outbox)


def swap_reason(swap: swap_saga.Swap, note: str) -> Reason:
    """The ledger reason of a swap's hold, post or void."""
    return Reason(source_event=swap.swap_id, campaign=f"swap:{swap.partner_id}", note=note)


def write_effects(
    conn: Connection, effects: Effects, now: datetime, *, ledger_topic: str
) -> list[dict[str, Any]]:
    """Apply the ledger operations, store swap states, replies, inbound credits and referral
    work; return the outbox rows for the caller to queue in the same transaction."""
    results = apply_batch(conn, effects.ops, now=now) if effects.ops else []
    notes: list[tuple[Operation, str, OperationResult]] = []
    for op, customer, result in zip(effects.ops, effects.op_customers, results, strict=True):
        if isinstance(result, Rejected):
            effects.ledger_rejections += 1
            log.error("ledger refused %s: %s %s", op.idempotency_key, result.code,
                      result.message)
        notes.append((op, customer, result))
    if effects.dirty:
        update_swaps(conn, [swap_to_row(effects.swaps[i]) for i in sorted(effects.dirty)])
    insert_swap_replies(conn, effects.replies)
    insert_ignore(conn, inbound_swaps, effects.inbound)
    write_work(conn, effects.referral)
    return effects.outbox + ledger_notes(notes, ledger_topic)


def ledger_notes(
    notes: Sequence[tuple[Operation, str, OperationResult]], ledger_topic: str
) -> list[dict[str, Any]]:
    """points.ledger messages for the entries committed now (replays add none)."""
    rows: list[dict[str, Any]] = []
    for op, customer, result in notes:
        if not isinstance(result, Applied):
            continue
        kind, delta = _wallet_effect(op)
        body = {
            "entry_key": op.idempotency_key,
            "kind": kind,
            "customer_id": customer,
            "points": delta,
            "source_event": op.reason.source_event,
        }
        if op.reason.rule_ids:  # a partner purchase's earning names its rules
            body["rule_ids"] = list(op.reason.rule_ids)
            body["ruleset_version"] = op.reason.ruleset_version
        rows.append(
            {
                "topic": ledger_topic,
                "message_key": customer.encode(),
                "message_value": jsonfast.dumps_bytes(body),
                "headers": {"content-type": "application/json"},
                "dedupe_key": f"ledger:{op.idempotency_key}",
            }
        )
    return rows


def _wallet_effect(op: Operation) -> tuple[str, int]:
    if isinstance(op, Hold):
        return "hold", -op.amount
    if isinstance(op, PostHold):
        return "post", 0
    if isinstance(op, VoidHold):
        return "void", 0  # amount not on the op; the notice names the entry
    if isinstance(op, Earn):
        return op.kind, op.amount
    if isinstance(op, Clawback):
        return "clawback", -(op.amount or 0)
    return type(op).__name__.lower(), 0
