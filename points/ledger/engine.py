"""The batch engine: runs operations in order against an in-memory state and drafts entries.

Pure Python (no SQLAlchemy). The store loads a ``BatchState`` (points.ledger.batch_state) for
the accounts, lots, holds and entries a batch touches, the engine decides every operation in
sequence (each one sees the effects of those before it), and the store writes the drafts with
set-based SQL.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final

from points.errors import (
    AlreadyReversed,
    HoldAlreadyResolved,
    HoldExpired,
    HoldNotFound,
    InsufficientPoints,
    InvalidAmount,
    InvalidRequest,
    LedgerInvariantViolated,
    NotReversible,
    RequestRejected,
    UnknownEntry,
)
from points.ledger import core
from points.ledger.batch_state import (
    BatchState,
    EntryDraft,
    EntryInfo,
    HoldDraft,
    HoldState,
    Leg,
    LotState,
)
from points.ledger.model import (
    ACCOUNT_SIGN,
    AMOUNT_MAX,
    AccountRef,
    Adjust,
    Clawback,
    Earn,
    EntryKind,
    ExpireHolds,
    ExpireLots,
    Hold,
    Operation,
    PostHold,
    Reverse,
    Spend,
    VoidHold,
)

__all__ = [
    "REVERSIBLE_KINDS",
    "decide",
    "entry_kind",
    "referenced_keys",
]

REVERSIBLE_KINDS: Final = frozenset({"earn", "referral", "swap", "spend", "adjust"})
EARNING_KINDS: Final = frozenset({"earn", "referral", "swap"})
_new_tuple = tuple.__new__  # AccountRef(...) without the NamedTuple's Python-level __new__

_KIND_BY_OP: Final[dict[type, EntryKind]] = {
    Spend: "spend",
    Hold: "hold",
    PostHold: "post",
    VoidHold: "void",
    ExpireHolds: "void",
    Reverse: "reverse",
    Clawback: "clawback",
    ExpireLots: "expire",
    Adjust: "adjust",
}


def entry_kind(op: Operation) -> EntryKind:
    if isinstance(op, Earn):
        return op.kind
    return _KIND_BY_OP[type(op)]


def referenced_keys(ops: Iterable[Operation]) -> tuple[set[str], set[str]]:
    """Keys of (holds, other entries) that operations refer to, for the store to load."""
    holds: set[str] = set()
    entries: set[str] = set()
    for op in ops:
        if type(op) is Earn:  # nearly every operation; refers to nothing
            continue
        if isinstance(op, PostHold | VoidHold):
            holds.add(op.hold_key)
        elif isinstance(op, Reverse):
            entries.add(op.entry_key)
        elif isinstance(op, Clawback):
            entries.add(op.earning_key)
    return holds, entries


def _lot_order(lot: LotState) -> tuple[datetime, int]:
    return (lot.expires_at, lot.lot_id)


class _Engine:
    """Decides operations one by one. Every method checks everything that can refuse the
    operation before it changes the state (check, then act), so a refusal changes nothing."""

    def __init__(self, state: BatchState, now: datetime) -> None:
        self.state = state
        self.now = now
        self.all_lots: dict[int, LotState] = {}
        self.sources: dict[tuple[str, str | None], AccountRef] = {}

    # --- bookkeeping -------------------------------------------------------------------

    def check_legs(self, legs: Sequence[Leg]) -> dict[AccountRef, int]:
        """New balances of the customer accounts the legs touch; refuses a broken sign rule."""
        balances = self.state.balances
        changed: dict[AccountRef, int] = {}
        for debit, credit, amount in legs:
            if not 0 < amount <= AMOUNT_MAX or debit == credit or debit.program != credit.program:
                raise LedgerInvariantViolated(f"malformed leg {debit}->{credit} {amount}")
            if not debit.is_hot:
                changed[debit] = changed.get(debit, balances.get(debit, 0)) - amount
            if not credit.is_hot:
                changed[credit] = changed.get(credit, balances.get(credit, 0)) + amount
        for ref, value in changed.items():
            if value * ACCOUNT_SIGN[ref.kind] < 0:
                raise InsufficientPoints(f"{ref.kind} of {ref.owner} would be {value}")
        return changed

    def plan(self, wallet: AccountRef, amount: int, first: int | None = None) -> core.LotPlan:
        lots = self.state.wallet_lots(wallet)
        if sum(lot.remaining for lot in lots) != self.state.balance(wallet):
            raise LedgerInvariantViolated(f"lots of {wallet} do not add up to its balance")
        return core.plan_consumption(
            ((lot.lot_id, lot.remaining) for lot in lots), amount, first=first
        )

    def take(self, wallet: AccountRef, plan: core.LotPlan) -> None:
        for lot_id, points in plan:
            self.all_lots[lot_id].remaining -= points
        self.state.lots[wallet] = [lot for lot in self.state.wallet_lots(wallet) if lot.remaining]

    def give_back(self, wallet: AccountRef, plan: Sequence[tuple[int, int]]) -> None:
        lots = self.state.wallet_lots(wallet)
        present = {lot.lot_id for lot in lots}
        for lot_id, points in plan:
            lot = self.all_lots.get(lot_id)
            if lot is None or lot.wallet != wallet or lot.remaining + points > lot.amount:
                raise LedgerInvariantViolated(f"cannot return {points} to lot {lot_id}")
            lot.remaining += points
            if lot_id not in present:
                present.add(lot_id)
                bisect.insort(lots, lot, key=lambda x: x.order)

    def add_lot(self, d: EntryDraft, wallet: AccountRef, expires_at: datetime,
                amount: int) -> None:
        d.new_lot = (wallet, expires_at, amount)
        lot = LotState(d.entry_id, wallet, expires_at, amount, amount)
        self.all_lots[d.entry_id] = lot
        lots = self.state.lots.get(wallet)
        if lots is not None:
            bisect.insort(lots, lot, key=_lot_order)

    def require(self, wallet: AccountRef, amount: int) -> None:
        have = self.state.balance(wallet)
        if have < amount:
            raise InsufficientPoints(f"wallet of {wallet.owner} has {have}, needs {amount}")

    # --- operations --------------------------------------------------------------------

    def source_of(self, program: str, partner: str | None) -> AccountRef:
        """The account an earning is funded from (hot: the same few for a whole batch)."""
        key = (program, partner)
        ref = self.sources.get(key)
        if ref is None:
            ref = self.sources[key] = (AccountRef(program, partner, "clearing") if partner
                                       else AccountRef(program, program, "issuance"))
        return ref

    def earn(self, op: Earn, d: EntryDraft) -> None:
        amount = op.amount
        if type(amount) is not int or not 0 < amount <= AMOUNT_MAX:
            core.check_amount(amount)  # raises with the precise reason
        expires_at = op.expires_at
        if expires_at.tzinfo is None:
            core.check_aware(expires_at, what="expires_at")
        if op.kind == "swap" and op.from_partner is None:
            raise InvalidRequest("an inbound swap names the partner it comes from")
        program, customer = op.program, op.customer_id
        d.program, d.customer_id, d.amount = program, customer, amount
        partner = op.from_partner
        source = self.sources.get((program, partner))
        if source is None:
            source = self.source_of(program, partner)
        wallet: AccountRef = _new_tuple(AccountRef, (program, customer, "wallet"))
        balances = self.state.balances
        # a plain tuple finds the AccountRef key: same hash, same equality
        debt = -balances.get((program, customer, "receivable"), 0)  # type: ignore[call-overload]
        if debt <= 0:
            # The common case, kept lean (add_lot inlined): one credit to the wallet cannot
            # break a sign rule.
            d.legs.append((source, wallet, amount))
            d.new_lot = (wallet, expires_at, amount)
            entry_id = d.entry_id
            lot = self.all_lots[entry_id] = LotState(entry_id, wallet, expires_at, amount, amount)
            lots = self.state.lots.get(wallet)
            if lots is not None:
                bisect.insort(lots, lot, key=_lot_order)
            balances[wallet] = balances.get(wallet, 0) + amount
            return
        receivable = AccountRef(program, customer, "receivable")
        to_debt, to_wallet = core.split_earning(amount, debt)
        d.legs.append((source, receivable, to_debt))
        if to_wallet:
            d.legs.append((source, wallet, to_wallet))
        changed = self.check_legs(d.legs)
        if to_wallet:
            self.add_lot(d, wallet, op.expires_at, to_wallet)
        balances.update(changed)

    def spend(self, op: Spend, d: EntryDraft) -> None:
        core.check_amount(op.amount)
        d.program, d.customer_id, d.amount = op.program, op.customer_id, op.amount
        wallet = AccountRef.wallet(op.program, op.customer_id)
        self.require(wallet, op.amount)
        dest = (AccountRef.clearing(op.program, op.to_partner) if op.to_partner
                else AccountRef.issuance(op.program))
        d.legs.append((wallet, dest, op.amount))
        changed = self.check_legs(d.legs)
        plan = self.plan(wallet, op.amount)
        self.take(wallet, plan)
        d.lot_moves = [(lot, -n) for lot, n in plan]
        self.state.balances.update(changed)

    def hold(self, op: Hold, d: EntryDraft) -> None:
        core.check_amount(op.amount)
        core.check_aware(op.timeout_at, what="timeout_at")
        if op.idempotency_key in self.state.holds:
            raise LedgerInvariantViolated(f"hold {op.idempotency_key!r} exists")
        d.program, d.customer_id, d.amount = op.program, op.customer_id, op.amount
        wallet = AccountRef.wallet(op.program, op.customer_id)
        held = AccountRef.held(op.program, op.customer_id)
        self.require(wallet, op.amount)
        dest = (AccountRef.clearing(op.program, op.to_partner) if op.to_partner
                else AccountRef.issuance(op.program))
        d.legs.append((wallet, held, op.amount))
        changed = self.check_legs(d.legs)
        plan = self.plan(wallet, op.amount)
        self.take(wallet, plan)
        d.lot_moves = [(lot, -n) for lot, n in plan]
        d.new_hold = HoldDraft(wallet, held, dest, op.amount, op.timeout_at)
        self.state.balances.update(changed)
        self.state.holds[op.idempotency_key] = HoldState(
            d.entry_id, op.idempotency_key, op.program, op.customer_id, op.amount,
            op.timeout_at, dest, plan,
        )

    def find_hold(self, key: str) -> HoldState:
        hold = self.state.holds.get(key)
        if hold is None:
            raise HoldNotFound(f"no hold with key {key!r}")
        if hold.resolved:
            raise HoldAlreadyResolved(f"hold {key!r} is already resolved")
        return hold

    def release(self, d: EntryDraft, hold: HoldState, posted: int, outcome: str) -> None:
        """Post ``posted`` of the hold to its destination and return the rest to the wallet.

        Cannot refuse: the held account holds exactly the pending holds' amounts.
        """
        wallet = AccountRef.wallet(hold.program, hold.customer_id)
        held = AccountRef.held(hold.program, hold.customer_id)
        returned = hold.amount - posted
        legs: list[Leg] = []
        if posted:
            legs.append((held, hold.destination, posted))
        if returned:
            legs.append((held, wallet, returned))
        changed = self.check_legs(legs)
        if returned:
            plan = core.split_restore(hold.consumed, posted)
            self.give_back(wallet, plan)
            d.lot_moves.extend(plan)
        d.legs.extend(legs)
        d.resolutions.append((hold.entry_id, outcome, posted))
        hold.resolved = True
        self.state.balances.update(changed)

    def post(self, op: PostHold, d: EntryDraft) -> None:
        hold = self.find_hold(op.hold_key)
        d.program, d.customer_id, d.target_entry_id = hold.program, hold.customer_id, hold.entry_id
        if self.now > hold.timeout_at:
            raise HoldExpired(f"hold {op.hold_key!r} timed out at {hold.timeout_at.isoformat()}")
        posted, _ = core.resolve_hold(hold.amount, op.amount)
        d.amount = posted
        self.release(d, hold, posted, "posted")

    def void(self, op: VoidHold, d: EntryDraft) -> None:
        hold = self.find_hold(op.hold_key)
        d.program, d.customer_id, d.target_entry_id = hold.program, hold.customer_id, hold.entry_id
        d.amount = hold.amount
        self.release(d, hold, 0, "voided")

    def expire_holds(self, op: ExpireHolds, d: EntryDraft) -> None:
        core.check_aware(op.as_of, what="as_of")
        d.program = op.program
        due = sorted(
            (h for h in self.state.holds.values()
             if h.program == op.program and not h.resolved and h.timeout_at <= op.as_of),
            key=lambda h: (h.timeout_at, h.entry_id),
        )[: max(op.limit, 0)]
        for hold in due:
            self.release(d, hold, 0, "expired")
        d.amount = sum(h.amount for h in due) or None

    def target(self, key: str) -> EntryInfo:
        info = self.state.entries.get(key)
        if info is None:
            raise UnknownEntry(f"no committed entry with key {key!r}")
        if info.reversed:
            raise AlreadyReversed(f"entry {key!r} was reversed")
        return info

    def reverse(self, op: Reverse, d: EntryDraft) -> None:
        info = self.target(op.entry_key)
        if info.kind not in REVERSIBLE_KINDS:
            raise NotReversible(f"a {info.kind} entry cannot be reversed")
        if info.clawed:
            raise NotReversible(f"entry {op.entry_key!r} has clawbacks; claw back the rest")
        if info.program is None or info.customer_id is None:
            raise NotReversible(f"entry {op.entry_key!r} has no single customer")
        d.program, d.customer_id, d.amount = info.program, info.customer_id, info.amount
        d.reverses_entry_id = info.entry_id
        d.legs = [(credit, debit, amount) for debit, credit, amount in info.legs]
        changed = self.check_legs(d.legs)  # refuses when the wallet cannot give it back
        wallet = AccountRef.wallet(info.program, info.customer_id)
        restore = [(lot, -delta) for lot, delta in info.lot_moves if delta < 0]
        take: core.LotPlan = []
        if info.created_lot is not None:
            lot = self.all_lots.get(info.created_lot)
            if lot is None:
                raise LedgerInvariantViolated(f"lot {info.created_lot} was not loaded")
            take = self.plan(wallet, lot.amount, first=info.created_lot)
        if restore:
            self.give_back(wallet, restore)
            d.lot_moves.extend(restore)
        if take:
            self.take(wallet, take)
            d.lot_moves.extend((lot_id, -n) for lot_id, n in take)
        self.state.balances.update(changed)
        info.reversed = True

    def clawback(self, op: Clawback, d: EntryDraft) -> None:
        info = self.target(op.earning_key)
        if info.kind not in EARNING_KINDS or info.amount is None or info.customer_id is None:
            raise NotReversible(f"entry {op.earning_key!r} is a {info.kind}, not an earning")
        assert info.program is not None
        amount = core.clawable(info.amount, info.clawed, op.amount)
        d.program, d.customer_id, d.amount = info.program, info.customer_id, amount
        d.target_entry_id = info.entry_id
        source = info.legs[0][0]  # the account that funded the earning
        wallet = AccountRef.wallet(info.program, info.customer_id)
        receivable = AccountRef.receivable(info.program, info.customer_id)
        from_wallet, to_debt = core.split_clawback(amount, self.state.balance(wallet))
        if from_wallet:
            d.legs.append((wallet, source, from_wallet))
        if to_debt:
            d.legs.append((receivable, source, to_debt))
        changed = self.check_legs(d.legs)
        if from_wallet:
            plan = self.plan(wallet, from_wallet, first=info.created_lot)
            self.take(wallet, plan)
            d.lot_moves = [(lot, -n) for lot, n in plan]
        self.state.balances.update(changed)
        info.clawed += amount

    def expire_lots(self, op: ExpireLots, d: EntryDraft) -> None:
        core.check_aware(op.as_of, what="as_of")
        d.program = op.program
        due = sorted(
            (lot for wallet, lots in self.state.lots.items() if wallet.program == op.program
             for lot in lots if lot.expires_at <= op.as_of and lot.remaining > 0),
            key=lambda lot: lot.order,
        )[: max(op.limit, 0)]
        per_wallet: dict[AccountRef, int] = {}
        for lot in due:
            per_wallet[lot.wallet] = per_wallet.get(lot.wallet, 0) + lot.remaining
        sink = AccountRef.expiry(op.program)
        d.legs = [(wallet, sink, points) for wallet, points in sorted(per_wallet.items())]
        changed = self.check_legs(d.legs)
        for lot in due:
            d.lot_moves.append((lot.lot_id, -lot.remaining))
            lot.remaining = 0
        for wallet in per_wallet:
            self.state.lots[wallet] = [lot for lot in self.state.lots[wallet] if lot.remaining]
        d.amount = sum(per_wallet.values()) or None
        self.state.balances.update(changed)

    def adjust(self, op: Adjust, d: EntryDraft) -> None:
        if not op.reason.operator or not op.reason.note:
            raise InvalidRequest("an adjustment names its operator and a note")
        if type(op.delta) is not int or op.delta == 0:
            raise InvalidAmount("delta must be a non-zero integer")
        d.program, d.customer_id = op.program, op.customer_id
        wallet = AccountRef.wallet(op.program, op.customer_id)
        issuance = AccountRef.issuance(op.program)
        d.amount = core.check_amount(abs(op.delta), what="delta")
        if op.delta > 0:
            if op.expires_at is None:
                raise InvalidRequest("a credit adjustment needs expires_at for its lot")
            core.check_aware(op.expires_at, what="expires_at")
            d.legs.append((issuance, wallet, d.amount))
            changed = self.check_legs(d.legs)
            self.add_lot(d, wallet, op.expires_at, d.amount)
        else:
            self.require(wallet, d.amount)
            d.legs.append((wallet, issuance, d.amount))
            changed = self.check_legs(d.legs)
            plan = self.plan(wallet, d.amount)
            self.take(wallet, plan)
            d.lot_moves = [(lot, -n) for lot, n in plan]
        self.state.balances.update(changed)

    # --- dispatch ----------------------------------------------------------------------

    def run(self, op: Operation, d: EntryDraft) -> None:
        if isinstance(op, Earn):
            self.earn(op, d)
        elif isinstance(op, Spend):
            self.spend(op, d)
        elif isinstance(op, Hold):
            self.hold(op, d)
        elif isinstance(op, PostHold):
            self.post(op, d)
        elif isinstance(op, VoidHold):
            self.void(op, d)
        elif isinstance(op, ExpireHolds):
            self.expire_holds(op, d)
        elif isinstance(op, Reverse):
            self.reverse(op, d)
        elif isinstance(op, Clawback):
            self.clawback(op, d)
        elif isinstance(op, ExpireLots):
            self.expire_lots(op, d)
        else:
            self.adjust(op, d)


def decide(
    ops: Sequence[tuple[Operation, int, int]],
    state: BatchState,
    *,
    now: datetime,
    known_lots: dict[int, LotState] | None = None,
) -> list[EntryDraft]:
    """Decide each ``(operation, entry_id, request_hash)`` in order; one draft per operation.

    A refused operation yields a rejected draft and leaves the state as it was, so the
    operations after it see exactly what they would have seen without it.
    """
    _, referenced = referenced_keys(op for op, _, _ in ops)
    engine = _Engine(state, now)
    for lots in state.lots.values():
        for lot in lots:
            engine.all_lots[lot.lot_id] = lot
    if known_lots:
        for lot_id, lot in known_lots.items():
            engine.all_lots.setdefault(lot_id, lot)
    drafts: list[EntryDraft] = []
    append = drafts.append
    earn = engine.earn
    for op, entry_id, digest in ops:
        if type(op) is Earn:  # nearly every operation: straight to it, not through run()
            draft = EntryDraft(entry_id, op.idempotency_key, op.kind, digest, reason=op.reason)
            try:
                earn(op, draft)
            except RequestRejected as error:
                draft = _rejected(draft, error)
        else:
            draft = EntryDraft(entry_id, op.idempotency_key, _KIND_BY_OP[type(op)], digest,
                               reason=op.reason)
            try:
                engine.run(op, draft)
            except RequestRejected as error:
                # Every operation checks before it changes the state, so a refusal leaves
                # the state as it was and the operations after it see what they would have.
                draft = _rejected(draft, error)
        append(draft)
        if op.idempotency_key in referenced and draft.error is None:
            state.entries[op.idempotency_key] = EntryInfo(
                draft.entry_id, draft.key, draft.kind, draft.program, draft.customer_id,
                draft.amount, list(draft.legs), list(draft.lot_moves),
                draft.entry_id if draft.new_lot else None,
            )
    return drafts


def _rejected(draft: EntryDraft, error: RequestRejected) -> EntryDraft:
    return EntryDraft(
        draft.entry_id, draft.key, draft.kind, draft.request_hash,
        program=draft.program, customer_id=draft.customer_id, amount=draft.amount,
        reason=draft.reason, error=error,
    )
