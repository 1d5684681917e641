"""What a batch reads and what it drafts: the records passed between the store and the engine.

The store (``points.ledger.store``) loads a :class:`BatchState` (balances, lots, holds, the
entries operations refer to); the engine (``points.ledger.engine``) decides the operations
against it and returns one :class:`EntryDraft` each, which the store writes. Plain slotted
dataclasses, no behaviour beyond reading the state: both sides import them without importing
each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from points.errors import LedgerInvariantViolated, RequestRejected
from points.ledger.model import AccountRef, EntryKind, Reason

__all__ = [
    "BatchState",
    "EntryDraft",
    "EntryInfo",
    "HoldDraft",
    "HoldState",
    "Leg",
    "LotState",
]

Leg = tuple[AccountRef, AccountRef, int]  # (debit, credit, amount)


@dataclass(slots=True)
class LotState:
    lot_id: int  # the id of the entry that created the lot
    wallet: AccountRef
    expires_at: datetime
    amount: int
    remaining: int

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.expires_at, self.lot_id)


@dataclass(slots=True)
class HoldState:
    entry_id: int
    key: str
    program: str
    customer_id: str
    amount: int
    timeout_at: datetime
    destination: AccountRef
    consumed: list[tuple[int, int]]  # the lots the hold took points from, in order
    resolved: bool = False


@dataclass(slots=True)
class EntryInfo:
    """A committed entry that a later operation refers to (reverse or clawback target)."""

    entry_id: int
    key: str
    kind: str
    program: str | None
    customer_id: str | None
    amount: int | None
    legs: list[Leg]
    lot_moves: list[tuple[int, int]]  # (lot_id, delta)
    created_lot: int | None
    reversed: bool = False
    clawed: int = 0


@dataclass(slots=True)
class HoldDraft:
    wallet: AccountRef
    held: AccountRef
    destination: AccountRef
    amount: int
    timeout_at: datetime


@dataclass(slots=True)
class EntryDraft:
    entry_id: int
    key: str
    kind: EntryKind
    request_hash: int
    program: str | None = None
    customer_id: str | None = None
    amount: int | None = None
    reason: Reason | None = None  # stored as JSON text (model.reason_json)
    error: RequestRejected | None = None
    reverses_entry_id: int | None = None
    target_entry_id: int | None = None
    legs: list[Leg] = field(default_factory=list)
    new_lot: tuple[AccountRef, datetime, int] | None = None
    lot_moves: list[tuple[int, int]] = field(default_factory=list)
    new_hold: HoldDraft | None = None
    resolutions: list[tuple[int, str, int]] = field(default_factory=list)

    @property
    def committed(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class BatchState:
    """What the batch may read. Balances of customer accounts absent here are zero (new)."""

    balances: dict[AccountRef, int] = field(default_factory=dict)
    lots: dict[AccountRef, list[LotState]] = field(default_factory=dict)  # loaded wallets only
    holds: dict[str, HoldState] = field(default_factory=dict)
    entries: dict[str, EntryInfo] = field(default_factory=dict)

    def balance(self, ref: AccountRef) -> int:
        return self.balances.get(ref, 0)

    def wallet_lots(self, wallet: AccountRef) -> list[LotState]:
        lots = self.lots.get(wallet)
        if lots is None:
            # The store loads the lots of every wallet an operation may debit; reaching here
            # means it did not, and deciding without them could break "lots == balance".
            raise LedgerInvariantViolated(f"lots of {wallet} were not loaded")
        return lots
