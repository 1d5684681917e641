"""The swaps desk: quotes, the outbound saga on the ledger, inbound credits, the deadline timer.

Outbound saga (docs/partners.md section 4.2)::

    quote()            swap_quotes row (rate version, fee, expiry)
    open_swaps()       ONE transaction: Hold(s) on the wallet + swaps row + outbox swap_requested
    plan_replies()     partner replies, in the partner events batch's transaction
                       (points/exchange/partner_events.py):
                         swap_confirmed -> PostHold to the partner's clearing account
                         swap_rejected  -> VoidHold, points back
                         anything that must change nothing -> recorded in swap_replies
    expire_due()       the timer: overdue swaps -> VoidHold + outbox swap_cancelled
    cancel_swap()      the customer, before the partner confirmed: VoidHold + outbox
                       swap_cancelled (saga state ``expired``, reason ``cancelled_by_customer``)

Ledger idempotency keys come from the swap id (``swap:<id>:hold``, ``swap:<id>:hold:post``,
``swap:<id>:hold:void``, the same with ``fee-hold``); inbound credits use the partner's
reference (``inbound:<partner>:<reference>``). A swap's saga state is locked (``FOR UPDATE``)
while a transaction decides it, so two workers cannot resolve one swap twice, and the ledger
refuses to resolve a hold twice anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from points import partners as pc
from points import swap_saga
from points.errors import PointsError
from points.exchange import store
from points.exchange.effects import Effects, ledger_notes, swap_reason, write_effects
from points.exchange.referral_desk import ReferralDesk
from points.exchange.store import OpenState, outbox_row
from points.ledger import apply_batch
from points.ledger.model import (
    Earn,
    Hold,
    Operation,
    OperationResult,
    PostHold,
    Reason,
    Rejected,
    VoidHold,
)
from points.outbox import enqueue
from points.ports import Accepted, PartnerDirectory

__all__ = [
    "CANCELLED_REASON",
    "ExchangeError",
    "SwapDesk",
    "SwapNotCancellable",
    "SwapNotFound",
    "SwapOrder",
    "SwapRefused",
    "SwapView",
    "UnknownQuote",
    "swap_id_for",
]

#: A swap the customer cancelled is, for the saga, a swap given up early: state ``expired``
#: with this reason (so a late confirmation is ``late_confirmation`` and reconciled exactly
#: like one after the deadline); the customer sees the status ``cancelled``.
CANCELLED_REASON = "cancelled_by_customer"


class ExchangeError(PointsError):
    code = "exchange_error"


class UnknownQuote(ExchangeError):
    code = "unknown_quote"


class SwapNotFound(ExchangeError):
    """No swap with that id for this customer (another customer's swap is not theirs)."""

    code = "swap_not_found"


class SwapNotCancellable(ExchangeError):
    """The swap is already final: completed, rejected or expired."""

    code = "swap_not_cancellable"


def swap_id_for(quote_id: str) -> str:
    """One swap per quote: accepting a quote twice (a client retry) is the same swap."""
    return "sw-" + hashlib.blake2b(quote_id.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class SwapOrder:
    customer_id: str
    quote_id: str


@dataclass(frozen=True, slots=True)
class SwapRefused:
    """An order refused before anything moved (expired quote, not linked, limits...)."""

    customer_id: str
    quote_id: str
    code: str
    message: str

    def error(self) -> PointsError:
        """The refusal as the typed error it stands for (``UnknownQuote``, ``QuoteExpired``...)."""
        return _refusal_error(self.code, self.message)


@dataclass(frozen=True, slots=True)
class SwapView:
    """What the customer sees: ``status`` is pending, completed, rejected, expired or
    cancelled (``state`` is the saga's own status; a cancelled swap's is ``expired``)."""

    swap_id: str
    customer_id: str
    partner_id: str
    points: int
    fee_points: int
    partner_units: int
    status: str
    reason: str
    state: str
    requested_at: datetime
    deadline_at: datetime
    partner_reference: str | None

    @staticmethod
    def of(swap: swap_saga.Swap) -> SwapView:
        status, reason = swap_saga.customer_status(swap)
        if swap.status is swap_saga.SwapStatus.EXPIRED and swap.reason == CANCELLED_REASON:
            status = "cancelled"
        return SwapView(
            swap.swap_id, swap.customer_id, swap.partner_id, swap.points, swap.fee_points,
            swap.partner_units, status, reason, str(swap.status), swap.requested_at,
            swap.deadline_at, swap.partner_reference,
        )


class SwapDesk:
    """Quotes, swaps (open, cancel, status), partner replies to them, inbound credits and the
    deadline timer."""

    def __init__(
        self,
        engine: Engine,
        directory: PartnerDirectory,
        referrals: ReferralDesk,
        *,
        ledger_topic: str,
        zone: ZoneInfo,
        lot_lifetime: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._referrals = referrals
        self._ledger_topic = ledger_topic
        self._zone = zone
        self._lot_lifetime = lot_lifetime
        self._clock = clock

    # ----------------------------------------------------------------------------- quotes

    def quote(self, customer_id: str, partner_id: str, points: int) -> pc.Quote:
        return self.quote_many([(customer_id, partner_id, points)])[0]

    def quote_many(self, requests: Sequence[tuple[str, str, int]]) -> list[pc.Quote]:
        """Price several swaps and store the quotes (one statement); raises the first refusal."""
        quotes = self.price_many(requests)
        rows = [
            store.quote_to_row(customer_id, q)
            for (customer_id, _, _), q in zip(requests, quotes, strict=True)
        ]
        with self._engine.connect() as conn:
            store.insert_quotes(conn, rows)
        return quotes

    def price_many(self, requests: Sequence[tuple[str, str, int]]) -> list[pc.Quote]:
        """The quotes of :meth:`quote_many`, not stored (the caller stores each with
        :func:`points.exchange.store.quote_to_row`); raises the first refusal."""
        now = self._clock()
        return [
            self._directory.get(partner_id).quote(points, now, customer_id=customer_id)
            for customer_id, partner_id, points in requests
        ]

    # ------------------------------------------------------------------------------ swaps

    def request_swap(
        self, customer_id: str, quote_id: str, *, conn: Connection | None = None
    ) -> SwapView:
        """Accept a quote: hold, swap row and request in one transaction (``conn``'s, when
        given: the caller commits; else one of its own); raise a refusal."""
        order = [SwapOrder(customer_id, quote_id)]
        [result] = self.open_swaps(order) if conn is None else self.open_swaps_on(conn, order)
        if isinstance(result, SwapRefused):
            raise result.error()
        return result

    def open_swaps(self, orders: Sequence[SwapOrder]) -> list[SwapView | SwapRefused]:
        """Accept quotes in one transaction: per swap the hold(s), the swap row and the
        ``swap_requested`` outbox row; a swap the wallet cannot cover is stored as rejected
        (``insufficient_points``) with nothing held."""
        with self._engine.begin() as conn:
            return self.open_swaps_on(conn, orders)

    def open_swaps_on(
        self, conn: Connection, orders: Sequence[SwapOrder]
    ) -> list[SwapView | SwapRefused]:
        """:meth:`open_swaps` in the caller's transaction (the caller commits); one result
        per order, in order. Two orders of one quote: the second is refused
        (``unknown_quote``), so a caller batching requests sends each quote once."""
        return self._open(conn, orders, self._clock())

    def _open(
        self, conn: Connection, orders: Sequence[SwapOrder], now: datetime
    ) -> list[SwapView | SwapRefused]:
        state = self.open_state(conn, sorted({o.quote_id for o in orders}), now)
        quotes, existing, links, usage = state.quotes, state.existing, state.links, state.usage
        results: list[SwapView | SwapRefused | None] = []
        opened: list[tuple[int, swap_saga.Transition]] = []
        ops: list[Operation] = []
        seen: set[str] = set()
        for order in orders:
            q = quotes.get(order.quote_id)
            if order.quote_id in existing:
                swap = existing[order.quote_id]
                if swap.customer_id != order.customer_id:
                    results.append(_refused(order, "unknown_quote", "no such quote"))
                else:
                    results.append(SwapView.of(swap))
                continue
            if q is None or q["customer_id"] != order.customer_id or order.quote_id in seen:
                results.append(_refused(order, "unknown_quote", f"no quote {order.quote_id!r}"))
                continue
            seen.add(order.quote_id)
            partner_id = str(q["partner_id"])
            try:
                partner = self._directory.get(partner_id).config
                link = links.get((order.customer_id, partner_id))
                today, year = usage.get((order.customer_id, partner_id), (0, 0))
                transition = pc.open_swap_from_quote(
                    store.quote_from_row(q),
                    partner,
                    swap_id=swap_id_for(order.quote_id),
                    customer_id=order.customer_id,
                    partner_member_id=link,
                    now=now,
                    swapped_today=today,
                    swapped_this_year=year,
                )
            except PointsError as exc:
                results.append(_refused(order, exc.code, exc.message))
                continue
            usage[(order.customer_id, partner_id)] = (today + int(q["points"]),
                                                      year + int(q["points"]))
            action = transition.action
            assert isinstance(action, swap_saga.PlaceHold)
            for leg in action.legs:
                ops.append(
                    Hold(
                        idempotency_key=leg.hold_key,
                        customer_id=order.customer_id,
                        amount=leg.amount,
                        timeout_at=action.timeout_at,
                        to_partner=leg.to_partner,
                        reason=swap_reason(transition.swap, "hold"),
                    )
                )
            opened.append((len(results), transition))
            results.append(None)
        held = apply_batch(conn, ops, now=now) if ops else []
        by_key = {r.idempotency_key: r for r in held}
        undo: list[Operation] = []
        rows: list[dict[str, Any]] = []
        outbox: list[dict[str, Any]] = []
        notes: list[tuple[Operation, str, OperationResult]] = []
        for index, transition in opened:
            swap = transition.swap
            action = transition.action
            assert isinstance(action, swap_saga.PlaceHold)
            outcomes = [by_key[leg.hold_key] for leg in action.legs]
            refused = [o for o in outcomes if isinstance(o, Rejected)]
            step: swap_saga.SwapInput
            if refused:
                for leg, o in zip(action.legs, outcomes, strict=True):
                    if not isinstance(o, Rejected):
                        undo.append(VoidHold(f"{leg.hold_key}:void", leg.hold_key,
                                             swap_reason(swap, "hold_refused")))
                step = swap_saga.HoldRefused(swap.swap_id, refused[0].code, now)
            else:
                step = swap_saga.HoldPlaced(swap.swap_id, now)
                for leg, o in zip(action.legs, outcomes, strict=True):
                    notes.append((Hold(leg.hold_key, swap.customer_id, leg.amount,
                                       action.timeout_at), swap.customer_id, o))
            moved = swap_saga.apply(swap, step)
            assert isinstance(moved, swap_saga.Transition)
            swap = moved.swap
            rows.append(store.swap_to_row(swap))
            if swap.status is swap_saga.SwapStatus.PENDING:
                message = self._directory.get(swap.partner_id).swap_request(swap, now)
                outbox.append(outbox_row(message, f"swap:{swap.swap_id}:request"))
            results[index] = SwapView.of(swap)
        if undo:
            apply_batch(conn, undo, now=now)
        store.insert_swaps(conn, rows)
        outbox.extend(ledger_notes(notes, self._ledger_topic))
        enqueue(conn, outbox)
        return [r for r in results if r is not None]

    def open_state(self, conn: Connection, quote_ids: Sequence[str], now: datetime) -> OpenState:
        """What accepting these quotes needs (:func:`points.exchange.store.open_state`), with
        the customer's usage counted from the start of ``now``'s day and year in the
        exchange's zone."""
        local = now.astimezone(self._zone)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        year = day.replace(month=1, day=1)
        return store.open_state(conn, quote_ids, day, year)

    def swap_status(self, customer_id: str, swap_id: str) -> SwapView | None:
        """A customer sees only their own swaps."""
        with self._engine.connect() as conn:
            swap = store.customer_swap(conn, customer_id, swap_id)
        return None if swap is None else SwapView.of(swap)

    def customer_swaps(self, customer_id: str, limit: int = 100) -> list[SwapView]:
        with self._engine.connect() as conn:
            return [SwapView.of(s) for s in store.customer_swaps(conn, customer_id, limit)]

    def cancel_swap(self, customer_id: str, swap_id: str) -> SwapView:
        """The customer gives up on a swap the partner has not confirmed: in ONE transaction
        void the hold(s) (keys ``<hold key>:void``, as at the deadline), mark the swap
        cancelled (saga state ``expired``, reason :data:`CANCELLED_REASON`), record it in
        ``swap_replies`` and put ``swap_cancelled`` in the outbox (dedupe
        ``swap:<id>:cancel``). The row is locked ``FOR UPDATE``, so a partner reply or the
        timer deciding the same swap waits and then finds it final.

        Idempotent: cancelling a cancelled swap returns it unchanged. Raises
        :class:`SwapNotFound` (not this customer's swap) or :class:`SwapNotCancellable`
        (completed, rejected, or expired at the deadline)."""
        now = self._clock()
        effects = Effects()
        with self._engine.begin() as conn:
            swap = store.customer_swap(conn, customer_id, swap_id, lock=True)
            if swap is None:
                raise SwapNotFound(f"no swap {swap_id!r}")
            view = SwapView.of(swap)
            if view.status == "cancelled":
                return view
            if swap.is_final:
                raise SwapNotCancellable(
                    f"swap {swap_id} is already {view.status} ({view.reason})"
                )
            moved = replace(swap, status=swap_saga.SwapStatus.EXPIRED, reason=CANCELLED_REASON,
                            updated_at=now, resolved_by="customer")
            effects.swaps[swap_id] = moved
            effects.dirty.add(swap_id)
            effects.replies.append(
                {
                    "swap_id": swap_id,
                    "partner_id": swap.partner_id,
                    "event_id": "customer",
                    "event_type": "customer_cancelled",
                    "points": None,
                    "partner_units": None,
                    "partner_reference": None,
                    "at": now,
                    "outcome": "applied",
                    "reason": CANCELLED_REASON,
                    "detail": f"cancelled by the customer while {swap.status}",
                }
            )
            hold_keys = [swap.hold_key] + ([swap.fee_hold_key] if swap.fee_hold_key else [])
            for hold_key in hold_keys:
                effects.add(VoidHold(f"{hold_key}:void", hold_key,
                                     reason=swap_reason(moved, CANCELLED_REASON)), customer_id)
            message = self._directory.get(swap.partner_id).swap_cancellation(moved, now)
            effects.outbox.append(outbox_row(message, f"swap:{swap_id}:cancel"))
            enqueue(conn, write_effects(conn, effects, now, ledger_topic=self._ledger_topic))
        return SwapView.of(moved)

    # ------------------------------------------------------------ partner replies, inbound

    def plan_replies(
        self, conn: Connection, effects: Effects, fresh: Sequence[Accepted], now: datetime
    ) -> None:
        """The partners' ``swap_confirmed`` / ``swap_rejected`` of a partner events batch:
        their swaps locked, each reply run through the saga into ``effects``."""
        inputs = [a.domain for a in fresh
                  if isinstance(a.domain, swap_saga.PartnerConfirmed | swap_saga.PartnerRejected)]
        if not inputs:
            return
        for swap in store.lock_swaps(conn, [i.swap_id for i in inputs]):
            effects.swaps[swap.swap_id] = swap
        for step in inputs:
            assert isinstance(step, swap_saga.PartnerConfirmed | swap_saga.PartnerRejected)
            self._step(effects, effects.swaps.get(step.swap_id), step, now)

    def _step(
        self,
        effects: Effects,
        swap: swap_saga.Swap | None,
        step: swap_saga.PartnerConfirmed | swap_saga.PartnerRejected | swap_saga.DeadlinePassed,
        now: datetime,
    ) -> None:
        result = swap_saga.apply(swap, step)
        if isinstance(step, swap_saga.DeadlinePassed):
            event_id, event_type, partner_id = "timer", "deadline_passed", (
                swap.partner_id if swap else "")
        else:
            event_id, partner_id = step.event_id, step.partner_id
            event_type = ("swap_confirmed" if isinstance(step, swap_saga.PartnerConfirmed)
                          else "swap_rejected")
        reply: dict[str, Any] = {
            "swap_id": step.swap_id,
            "partner_id": partner_id,
            "event_id": event_id,
            "event_type": event_type,
            "points": getattr(step, "points", None),
            "partner_units": getattr(step, "partner_units", None),
            "partner_reference": getattr(step, "partner_reference", None),
            "at": now,
        }
        if isinstance(result, swap_saga.Ignored):
            effects.replies.append(
                {**reply, "outcome": "ignored", "reason": str(result.reason),
                 "detail": result.detail[:2000]}
            )
            return
        moved = result.swap
        effects.swaps[moved.swap_id] = moved
        effects.dirty.add(moved.swap_id)
        effects.replies.append(
            {**reply, "outcome": "applied", "reason": result.reason[:64],
             "detail": moved.reason[:2000]}
        )
        action = result.action
        if isinstance(action, swap_saga.PostHold):
            for hold_key, key in zip(action.hold_keys, action.idempotency_keys, strict=True):
                effects.add(PostHold(key, hold_key, reason=swap_reason(moved, "partner_confirmed")),
                            moved.customer_id)
        elif isinstance(action, swap_saga.VoidHold):
            for hold_key, key in zip(action.hold_keys, action.idempotency_keys, strict=True):
                effects.add(VoidHold(key, hold_key, reason=swap_reason(moved, moved.reason[:200])),
                            moved.customer_id)
        if moved.status is swap_saga.SwapStatus.EXPIRED:
            message = self._directory.get(moved.partner_id).swap_cancellation(moved, now)
            effects.outbox.append(outbox_row(message, f"swap:{moved.swap_id}:cancel"))

    def plan_inbound(self, effects: Effects, fresh: Sequence[Accepted], now: datetime) -> None:
        """The partners' inbound swaps of a partner events batch: each credits the wallet
        from the partner's clearing account (``inbound_swaps`` row, ledger ``Earn``)."""
        for a in fresh:
            credit = a.domain
            if not isinstance(credit, swap_saga.InboundCredit):
                continue
            effects.add(
                Earn(
                    idempotency_key=credit.idempotency_key,
                    customer_id=credit.customer_id,
                    amount=credit.points,
                    expires_at=now + self._lot_lifetime,
                    kind="swap",
                    from_partner=credit.partner_id,
                    reason=Reason(source_event=a.event_id, campaign=f"swap:{credit.partner_id}",
                                  note=f"inbound {credit.partner_units} units"),
                ),
                credit.customer_id,
            )
            effects.inbound.append(
                {
                    "partner_id": credit.partner_id,
                    "partner_reference": credit.partner_reference,
                    "customer_id": credit.customer_id,
                    "partner_units": credit.partner_units,
                    "points": credit.points,
                    "event_id": a.event_id,
                    "ledger_key": credit.idempotency_key,
                    "at": now,
                }
            )

    # ------------------------------------------------------------------------------ timer

    def expire_due(self, limit: int = 1000) -> int:
        """Expire overdue swaps (void, cancel at the partner) and referral windows; one
        transaction; rows locked by another worker are skipped, not waited for."""
        now = self._clock()
        effects = Effects()
        with self._engine.begin() as conn:
            due = store.due_swaps(conn, now, limit)
            for swap in due:
                effects.swaps[swap.swap_id] = swap
                self._step(effects, swap, swap_saga.DeadlinePassed(swap.swap_id, now), now)
            expired_referrals = self._referrals.expire_due(conn, effects.referral, now, limit)
            if due or expired_referrals:
                enqueue(conn, write_effects(conn, effects, now, ledger_topic=self._ledger_topic))
        return len(effects.dirty) + expired_referrals


def _refused(order: SwapOrder, code: str, message: str) -> SwapRefused:
    return SwapRefused(order.customer_id, order.quote_id, code, message)


_ERRORS: dict[str, type[PointsError]] = {
    cls.code: cls
    for cls in (
        pc.QuoteExpired, pc.RateChanged, pc.QuoteMismatch, pc.MemberNotLinked,
        pc.DailyLimitExceeded, pc.YearlyLimitExceeded, pc.UnknownPartner,
        pc.PartnerUnavailable, UnknownQuote,
    )
}


def _refusal_error(code: str, message: str) -> PointsError:
    return _ERRORS.get(code, ExchangeError)(message)
