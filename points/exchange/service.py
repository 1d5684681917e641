"""The partner exchange on the ledger: member links, outbound swaps, partner replies, the
deadline timer, inbound credits and referrals. Every call is one database transaction.

Outbound saga (docs/partners.md section 4.2)::

    quote()            swap_quotes row (rate version, fee, expiry)
    open_swaps()       ONE transaction: Hold(s) on the wallet + swaps row + outbox swap_requested
    process()          partner replies (a consumed batch, ONE transaction):
                         swap_confirmed -> PostHold to the partner's clearing account
                         swap_rejected  -> VoidHold, points back
                         anything that must change nothing -> recorded in swap_replies
    expire_due()       the timer: overdue swaps -> VoidHold + outbox swap_cancelled
    cancel_swap()      the customer, before the partner confirmed: VoidHold + outbox
                       swap_cancelled (saga state ``expired``, reason ``cancelled_by_customer``)

Ledger idempotency keys come from the swap id (``swap:<id>:hold``, ``swap:<id>:hold:post``,
``swap:<id>:hold:void``, the same with ``fee-hold``); inbound credits use the partner's
reference (``inbound:<partner>:<reference>``). A replayed batch finds its event ids in the inbox
(``points.consumed_batch.ConsumedBatch``) and changes nothing; a swap's saga state is locked
(``FOR UPDATE``) while a batch decides, so two workers cannot resolve one swap twice, and the
ledger refuses to resolve a hold twice anyway.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Select,
    and_,
    bindparam,
    case,
    func,
    select,
    update,
)

from points import jsonfast, swap_saga
from points import partners as pc
from points import referrals as rl
from points.consumed_batch import ConsumedBatch
from points.dead_letters import RejectedMessage
from points.decoding import Decoder, RawMessage, classify
from points.errors import PointsError
from points.events import (
    CustomerOnboarded,
    CustomerProfile,
    Reversal,
    bank_customer_adapter,
    bank_transaction_adapter,
)
from points.events import PartnerPurchase as PartnerPurchaseEvent
from points.events import Purchase as PurchaseEvent
from points.events import (
    Refund as RefundEvent,
)
from points.exchange.memberships import refuse_taken_membership
from points.exchange.partner_earning import (
    StaleRuleState,
    plan_partner_earning,
    save_partner_earning,
)
from points.exchange.referral_desk import (
    CustomerSeen,
    Purchase,
    ReferralDesk,
    Refund,
    Work,
    new_referral_id,
    outbox_row,
    referral_refusal,
)
from points.exchange.store import (
    aware,
    bounded_id,
    insert_ignore,
    insert_swap_replies,
    insert_swaps,
    swap_from_row,
    swap_to_row,
    update_swaps,
)
from points.exchange.tables import (
    inbound_swaps,
    partner_links,
    swap_quotes,
    swaps,
)
from points.inbox import AcceptedEvent
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
from points.outbox import enqueue
from points.ports import (
    Accepted,
    InboundMessage,
    MemberLinkRequest,
    MemberLinkResult,
    PartnerDirectory,
    PartnerPurchaseNotice,
    ReferralSignupNotice,
)
from points.refusals import Refusal, record_refusals
from points.rules import RuleSet, load_ruleset
from points.settings import TopicNames

__all__ = [
    "CANCELLED_REASON",
    "BatchOutcome",
    "ExchangeError",
    "ExchangeService",
    "LinkView",
    "SwapNotCancellable",
    "SwapNotFound",
    "SwapOrder",
    "SwapRefused",
    "SwapView",
    "UnknownQuote",
    "swap_id_for",
]

#: The rule file partner purchases earn by when the service is not given a rule set.
DEFAULT_RULES_PATH = Path(__file__).resolve().parents[2] / "rules" / "default.yaml"
#: How often a batch is run again when the earning worker wrote a rule state under it.
STALE_STATE_RETRIES = 3

log = logging.getLogger(__name__)

OPEN = ("requested", "pending")
COUNTED = ("requested", "pending", "completed")
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


@dataclass(frozen=True, slots=True)
class LinkView:
    customer_id: str
    partner_id: str
    partner_member_id: str
    status: str
    request_id: str
    reason: str | None


@dataclass(slots=True)
class BatchOutcome:
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_reasons: Counter[str] = field(default_factory=Counter)
    swap_outcomes: Counter[str] = field(default_factory=Counter)
    inbound_points: int = 0
    ledger_rejections: int = 0
    referral_outcomes: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _Plan:
    ops: list[Operation] = field(default_factory=list)
    op_customers: list[str] = field(default_factory=list)
    swaps: dict[str, swap_saga.Swap] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    replies: list[dict[str, Any]] = field(default_factory=list)
    inbound: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    referral: Work = field(default_factory=Work)

    def add(self, op: Operation, customer_id: str) -> None:
        self.ops.append(op)
        self.op_customers.append(customer_id)


def _reason(swap: swap_saga.Swap, note: str) -> Reason:
    return Reason(source_event=swap.swap_id, campaign=f"swap:{swap.partner_id}", note=note)


class ExchangeService:
    """Link, quote, swap, reply handling, deadlines, inbound credits, referrals."""

    def __init__(
        self,
        engine: Engine,
        directory: PartnerDirectory,
        topics: TopicNames,
        *,
        referral_secret: bytes,
        referral_policy: rl.ReferralPolicy | None = None,
        zone: ZoneInfo | None = None,
        lot_lifetime_days: int = 365,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ruleset: RuleSet | None = None,
    ) -> None:
        self._engine = engine
        # Partner purchases earn by the earning worker's rules (settings.rules.path); read
        # on the first partner purchase when not given (the API never needs them).
        self._ruleset = ruleset
        self._directory = directory
        self._topics = topics
        self._lot_lifetime = timedelta(days=lot_lifetime_days)
        self._clock = clock
        self._zone = zone or ZoneInfo("Asia/Shanghai")
        self.referrals = ReferralDesk(
            directory,
            secret=referral_secret,
            policy=referral_policy or rl.ReferralPolicy(),
            zone=self._zone,
            lot_lifetime=self._lot_lifetime,
            points_ledger_topic=topics.points_ledger,
        )

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def events_topics(self) -> list[str]:
        return self._directory.events_topics()

    @property
    def bank_topics(self) -> list[str]:
        """What referral qualification reads (own consumer group, see docs/partners.md)."""
        return [self._topics.bank_transactions, self._topics.bank_customers]

    def now(self) -> datetime:
        return self._clock()

    # ---------------------------------------------------------------------------- linking

    def request_link(
        self,
        customer_id: str,
        partner_id: str,
        partner_member_id: str,
        *,
        member_name: str | None = None,
        referral_id: str | None = None,
    ) -> LinkView:
        """Ask the partner to confirm the membership (swaps wait for ``member_linked``)."""
        now = self._clock()
        program = self._directory.get(partner_id)
        # One customer per membership (points.exchange.memberships): the refusal is committed,
        # then raised. A request racing past this check loses on the unique index instead.
        with self._engine.begin() as conn:
            taken = refuse_taken_membership(conn, customer_id, partner_id, partner_member_id, now)
        if taken is not None:
            raise taken
        with self._engine.begin() as conn:
            current = self._link(conn, customer_id, partner_id)
            if (
                current is not None
                and current.status in ("linked", "requested")
                and current.partner_member_id == partner_member_id
            ):
                return current
            request_id = bounded_id(
                "link", customer_id, partner_id, partner_member_id, str(int(now.timestamp() * 1e6))
            )
            message = program.member_link_request(
                MemberLinkRequest(
                    request_id, customer_id, partner_member_id, member_name, referral_id
                ),
                now,
            )
            row = {
                "customer_id": customer_id,
                "partner_id": partner_id,
                "partner_member_id": partner_member_id,
                "status": "requested",
                "request_id": request_id,
                "referral_id": referral_id,
                "reason": None,
                "updated_at": now,
            }
            from points.exchange.store import upsert

            upsert(conn, partner_links, [row], ["customer_id", "partner_id"])
            enqueue(conn, [outbox_row(message, request_id)])
        return LinkView(customer_id, partner_id, partner_member_id, "requested", request_id, None)

    def link(self, customer_id: str, partner_id: str) -> LinkView | None:
        with self._engine.connect() as conn:
            return self._link(conn, customer_id, partner_id)

    def _link(self, conn: Connection, customer_id: str, partner_id: str) -> LinkView | None:
        row = conn.execute(
            select(partner_links).where(
                partner_links.c.customer_id == customer_id,
                partner_links.c.partner_id == partner_id,
            )
        ).mappings().first()
        if row is None:
            return None
        return LinkView(
            row["customer_id"], row["partner_id"], row["partner_member_id"], row["status"],
            row["request_id"], row["reason"],
        )

    # ----------------------------------------------------------------------------- quotes

    def quote(self, customer_id: str, partner_id: str, points: int) -> pc.Quote:
        return self.quote_many([(customer_id, partner_id, points)])[0]

    def quote_many(self, requests: Sequence[tuple[str, str, int]]) -> list[pc.Quote]:
        """Price several swaps and store the quotes (one statement); raises the first refusal."""
        now = self._clock()
        quotes = [
            self._directory.get(partner_id).quote(points, now, customer_id=customer_id)
            for customer_id, partner_id, points in requests
        ]
        rows = [
            {
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
            for (customer_id, _, _), q in zip(requests, quotes, strict=True)
        ]
        # One statement is atomic on its own: run it in autocommit, which saves the BEGIN and
        # COMMIT round trips a transaction would add around it (the insert still commits).
        with self._engine.connect() as conn:
            insert_ignore(conn.execution_options(isolation_level="AUTOCOMMIT"), swap_quotes, rows)
        return quotes

    # ------------------------------------------------------------------------------ swaps

    def request_swap(self, customer_id: str, quote_id: str) -> SwapView:
        """Accept a quote: hold, swap row and request in one transaction; raise a refusal."""
        result = self.open_swaps([SwapOrder(customer_id, quote_id)])[0]
        if isinstance(result, SwapRefused):
            error = _refusal_error(result.code, result.message)
            raise error
        return result

    def open_swaps(self, orders: Sequence[SwapOrder]) -> list[SwapView | SwapRefused]:
        """Accept quotes in one transaction: per swap the hold(s), the swap row and the
        ``swap_requested`` outbox row; a swap the wallet cannot cover is stored as rejected
        (``insufficient_points``) with nothing held."""
        now = self._clock()
        with self._engine.begin() as conn:
            return self._open(conn, orders, now)

    def _open(
        self, conn: Connection, orders: Sequence[SwapOrder], now: datetime
    ) -> list[SwapView | SwapRefused]:
        quotes, existing, links, usage = self._open_state(
            conn, sorted({o.quote_id for o in orders}), now
        )
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
                    _quote_from_row(q),
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
                        reason=_reason(transition.swap, "hold"),
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
                                             _reason(swap, "hold_refused")))
                step = swap_saga.HoldRefused(swap.swap_id, refused[0].code, now)
            else:
                step = swap_saga.HoldPlaced(swap.swap_id, now)
                for leg, o in zip(action.legs, outcomes, strict=True):
                    notes.append((Hold(leg.hold_key, swap.customer_id, leg.amount,
                                       action.timeout_at), swap.customer_id, o))
            moved = swap_saga.apply(swap, step)
            assert isinstance(moved, swap_saga.Transition)
            swap = moved.swap
            rows.append(swap_to_row(swap))
            if swap.status is swap_saga.SwapStatus.PENDING:
                message = self._directory.get(swap.partner_id).swap_request(swap, now)
                outbox.append(outbox_row(message, f"swap:{swap.swap_id}:request"))
            results[index] = SwapView.of(swap)
        if undo:
            apply_batch(conn, undo, now=now)
        insert_swaps(conn, rows)
        outbox.extend(self._ledger_notes(notes))
        enqueue(conn, outbox)
        return [r for r in results if r is not None]

    def _open_state(
        self, conn: Connection, quote_ids: Sequence[str], now: datetime
    ) -> tuple[
        dict[str, Mapping[str, Any]],
        dict[str, swap_saga.Swap],
        dict[tuple[str, str], str],
        dict[tuple[str, str], tuple[int, int]],
    ]:
        """What accepting these quotes needs, in ONE statement: per quote id its
        ``swap_quotes`` row, the swap already opened from it, the customer's linked member id
        at the quote's partner, and the points that customer swapped out to that partner
        today and this year (local zone; pending and completed swaps counted).

        Returns (quotes by id, existing swaps by quote id, member ids and usage, both by
        (customer, partner) of the quote). The link and the usage are only ever used for an
        order by the quote's own customer, so reading them for the quote's customer is all
        that is needed. A quote id without a quote row (unknown, or a forged id) costs one
        more look-up, for a swap opened from it (none is: swaps come from stored quotes)."""
        if not quote_ids:
            return {}, {}, {}, {}
        local = now.astimezone(self._zone)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        year = day.replace(month=1, day=1)
        rows = conn.execute(_OPEN_STATE, {"quote_ids": list(quote_ids), "day": day, "year": year})
        quotes: dict[str, Mapping[str, Any]] = {}
        existing: dict[str, swap_saga.Swap] = {}
        links: dict[tuple[str, str], str] = {}
        usage: dict[tuple[str, str], tuple[int, int]] = {}
        for r in rows:
            quote = dict(zip(_QUOTE_KEYS, r[:_SWAP_AT], strict=True))
            quotes[quote["quote_id"]] = quote
            if r[_SWAP_AT] is not None:
                existing[quote["quote_id"]] = swap_from_row(
                    dict(zip(_SWAP_KEYS, r[_SWAP_AT:_LINK_AT], strict=True))
                )
            pair = (str(quote["customer_id"]), str(quote["partner_id"]))
            member, today, this_year = r[_LINK_AT:]
            if member is not None:
                links[pair] = str(member)
            usage[pair] = (int(today or 0), int(this_year or 0))
        missing = [i for i in quote_ids if i not in quotes]
        if missing:
            found = conn.execute(select(swaps).where(swaps.c.quote_id.in_(missing)))
            for m in found.mappings():
                existing[m["quote_id"]] = swap_from_row(m)
        return quotes, existing, links, usage

    def swap_status(self, customer_id: str, swap_id: str) -> SwapView | None:
        """A customer sees only their own swaps."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(swaps).where(swaps.c.swap_id == swap_id, swaps.c.customer_id == customer_id)
            ).mappings().first()
        return None if row is None else SwapView.of(swap_from_row(row))

    def customer_swaps(self, customer_id: str, limit: int = 100) -> list[SwapView]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(swaps)
                .where(swaps.c.customer_id == customer_id)
                .order_by(swaps.c.requested_at.desc(), swaps.c.swap_id)
                .limit(limit)
            ).mappings()
            return [SwapView.of(swap_from_row(r)) for r in rows]

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
        plan = _Plan()
        with self._engine.begin() as conn:
            row = conn.execute(
                select(swaps)
                .where(swaps.c.swap_id == swap_id, swaps.c.customer_id == customer_id)
                .with_for_update()
            ).mappings().first()
            if row is None:
                raise SwapNotFound(f"no swap {swap_id!r}")
            swap = swap_from_row(row)
            view = SwapView.of(swap)
            if view.status == "cancelled":
                return view
            if swap.is_final:
                raise SwapNotCancellable(
                    f"swap {swap_id} is already {view.status} ({view.reason})"
                )
            moved = replace(swap, status=swap_saga.SwapStatus.EXPIRED, reason=CANCELLED_REASON,
                            updated_at=now, resolved_by="customer")
            plan.swaps[swap_id] = moved
            plan.dirty.add(swap_id)
            plan.replies.append(
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
                plan.add(VoidHold(f"{hold_key}:void", hold_key,
                                  reason=_reason(moved, CANCELLED_REASON)), customer_id)
            message = self._directory.get(swap.partner_id).swap_cancellation(moved, now)
            plan.outbox.append(outbox_row(message, f"swap:{swap_id}:cancel"))
            self._write(conn, plan, now, BatchOutcome())
        return SwapView.of(moved)

    # ----------------------------------------------------------------- partner events batch

    def process(self, messages: Sequence[InboundMessage]) -> BatchOutcome:
        """One consumed batch of partner events (every partner's topic): signature first,
        then contract, then meaning; one transaction; the caller acks after it returns.

        Run again (from the database) when the earning worker moved a customer's rule state
        on while this batch's partner purchases were being evaluated."""
        for attempt in range(1, STALE_STATE_RETRIES + 1):
            try:
                return self._process(messages)
            except StaleRuleState as stale:
                if attempt == STALE_STATE_RETRIES:
                    raise
                log.info("partner batch retried: %s", stale)
        raise AssertionError("unreachable")

    def _process(self, messages: Sequence[InboundMessage]) -> BatchOutcome:
        now = self._clock()
        outcome = BatchOutcome(messages=len(messages))
        inbox_rows: list[AcceptedEvent] = []
        results: list[Accepted] = []
        rejected: list[RejectedMessage] = []
        for m in messages:
            try:
                program = self._directory.for_events_topic(m.topic)
            except PointsError as exc:
                rejected.append(_reject(m, "unknown_topic", exc.message))
                continue
            result = program.interpret(m, now)
            if not isinstance(result, Accepted):
                rejected.append(_reject(m, result.reason_code, result.detail))
                continue
            event = result.event
            dump = getattr(event, "model_dump", None)
            payload: dict[str, Any] = dump(mode="json") if dump is not None else {}
            inbox_id = bounded_id("p", program.partner_id, result.event_id)
            inbox_rows.append(
                AcceptedEvent(inbox_id, m.topic, result.event_type[:32], result.customer_id,
                              m.partition, m.offset, jsonfast.dumps_bytes(payload))
            )
            results.append(result)
        with ConsumedBatch.begin(self._engine, dlq_topic=self._topics.points_dlq) as batch:
            conn = batch.conn
            fresh = batch.receive(results, inbox_rows, rejected)
            plan = _Plan()
            self._plan_swaps(conn, plan, fresh, now)
            self._plan_inbound(plan, fresh, now)
            self._plan_links_and_referrals(conn, plan, fresh, now)
            self._plan_partner_earning(conn, plan, fresh, now)
            self._write(conn, plan, now, outcome)
        outcome.stored = len(fresh)
        outcome.duplicates = len(inbox_rows) - len(fresh)
        outcome.rejected = len(rejected)
        outcome.rejected_reasons.update(r.reason_code for r in rejected)
        for reply in plan.replies:
            outcome.swap_outcomes[f"{reply['outcome']}:{reply['reason']}"] += 1
        outcome.inbound_points = sum(int(r["points"]) for r in plan.inbound)
        outcome.referral_outcomes = plan.referral.outcomes
        return outcome

    def _plan_swaps(
        self, conn: Connection, plan: _Plan, fresh: Sequence[Accepted], now: datetime
    ) -> None:
        inputs = [a.domain for a in fresh
                  if isinstance(a.domain, swap_saga.PartnerConfirmed | swap_saga.PartnerRejected)]
        if not inputs:
            return
        ids = sorted({i.swap_id for i in inputs})
        rows = conn.execute(
            select(swaps).where(swaps.c.swap_id.in_(ids)).order_by(swaps.c.swap_id)
            .with_for_update()
        ).mappings()
        for row in rows:
            plan.swaps[row["swap_id"]] = swap_from_row(row)
        for step in inputs:
            assert isinstance(step, swap_saga.PartnerConfirmed | swap_saga.PartnerRejected)
            self._step(plan, plan.swaps.get(step.swap_id), step, now)

    def _step(
        self,
        plan: _Plan,
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
            plan.replies.append(
                {**reply, "outcome": "ignored", "reason": str(result.reason),
                 "detail": result.detail[:2000]}
            )
            return
        moved = result.swap
        plan.swaps[moved.swap_id] = moved
        plan.dirty.add(moved.swap_id)
        plan.replies.append(
            {**reply, "outcome": "applied", "reason": result.reason[:64],
             "detail": moved.reason[:2000]}
        )
        action = result.action
        if isinstance(action, swap_saga.PostHold):
            for hold_key, key in zip(action.hold_keys, action.idempotency_keys, strict=True):
                plan.add(PostHold(key, hold_key, reason=_reason(moved, "partner_confirmed")),
                         moved.customer_id)
        elif isinstance(action, swap_saga.VoidHold):
            for hold_key, key in zip(action.hold_keys, action.idempotency_keys, strict=True):
                plan.add(VoidHold(key, hold_key, reason=_reason(moved, moved.reason[:200])),
                         moved.customer_id)
        if moved.status is swap_saga.SwapStatus.EXPIRED:
            message = self._directory.get(moved.partner_id).swap_cancellation(moved, now)
            plan.outbox.append(outbox_row(message, f"swap:{moved.swap_id}:cancel"))

    def _plan_inbound(self, plan: _Plan, fresh: Sequence[Accepted], now: datetime) -> None:
        for a in fresh:
            credit = a.domain
            if not isinstance(credit, swap_saga.InboundCredit):
                continue
            plan.add(
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
            plan.inbound.append(
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

    def _plan_partner_earning(
        self, conn: Connection, plan: _Plan, fresh: Sequence[Accepted], now: datetime
    ) -> None:
        """Linked members' partner purchases earn by the rules (points/exchange/
        partner_earning.py); an unlinked member's is a recorded refusal."""
        purchases = [a.event for a in fresh if isinstance(a.event, PartnerPurchaseEvent)]
        if not purchases:
            return
        if self._ruleset is None:
            self._ruleset = load_ruleset(DEFAULT_RULES_PATH)
        earning = plan_partner_earning(
            conn, purchases, self._ruleset, now=now, lot_lifetime=self._lot_lifetime
        )
        for earn in earning.earns:
            plan.add(earn, earn.customer_id)
        save_partner_earning(conn, earning)
        record_refusals(conn, earning.refusals)

    def _plan_links_and_referrals(
        self, conn: Connection, plan: _Plan, fresh: Sequence[Accepted], now: datetime
    ) -> None:
        desk, work = self.referrals, plan.referral
        purchases: list[Purchase] = []
        for a in fresh:
            d = a.domain
            if isinstance(d, MemberLinkResult):
                self._on_link(conn, work, d, now, a.event_id)
            elif isinstance(d, ReferralSignupNotice):
                self._on_partner_signup(conn, work, d, now)
            elif isinstance(d, PartnerPurchaseNotice):
                purchases.append(Purchase(d.event_id, d.customer_id, d.amount_minor, now))
        if purchases:
            desk.qualify(conn, work, purchases)
        for op, customer in zip(work.operations, work.op_customers, strict=True):
            plan.add(op, customer)
        plan.outbox.extend(work.outbox)

    def _on_link(
        self, conn: Connection, work: Work, result: MemberLinkResult, now: datetime,
        event_id: str = "",
    ) -> None:
        """A partner's ``member_linked`` / ``member_link_rejected`` decides the customer's
        pending link (docs/partners.md §2.2): the one whose request ``event_id`` the reply
        echoes in ``link_request_id``, or -- without it -- the pending request for the same
        customer, partner and ``partner_member_id``. A reply that decides nothing (no pending
        link, another request, another member id, already decided) is a recorded refusal with
        its reason, in this transaction; never silence."""
        row = conn.execute(
            select(partner_links).where(
                partner_links.c.customer_id == result.customer_id,
                partner_links.c.partner_id == result.partner_id,
            ).with_for_update()
        ).mappings().first()
        unmatched = _link_reply_mismatch(None if row is None else dict(row), result)
        if unmatched is not None:
            code, why = unmatched
            log.info("link reply %s for %s refused: %s", event_id, result.customer_id, code)
            record_refusals(conn, [Refusal(
                dedupe_key=f"link-reply:{result.partner_id}:{event_id}",
                source="partners", subject="member_link", reason_code=code, reason=why,
                at=now, subject_id=result.request_id, event_id=event_id,
                customer_id=result.customer_id,
            )])
            return
        assert row is not None
        status = "linked" if result.linked else "rejected"
        reason = None if result.linked else f"{result.reason_code}: {result.reason}"[:500]
        conn.execute(
            update(partner_links)
            .where(partner_links.c.customer_id == result.customer_id,
                   partner_links.c.partner_id == result.partner_id)
            .values(status=status, reason=reason, updated_at=now)
        )
        referral_id = row["referral_id"]
        if result.linked and referral_id:
            # bank-originated cross-referral: the customer joined the partner's program
            current = self.referrals.load(conn, [referral_id]).get(referral_id)
            if current is not None and current.status is rl.ReferralStatus.INVITED:
                self.referrals.sign_up(conn, work, current, result.customer_id, now)

    def _on_partner_signup(
        self, conn: Connection, work: Work, notice: ReferralSignupNotice, now: datetime
    ) -> None:
        """A partner's member opened a bank account with a code (partner-originated)."""
        owner = self.referrals.code_owner(conn, notice.referral_code)
        referrer = owner if owner is not None and owner.kind == "customer" else rl.Party(
            "partner", notice.partner_id)
        referral_id = new_referral_id("pm", notice.partner_id, notice.customer_id)
        existing = self.referrals.load(conn, [referral_id]).get(referral_id)
        if existing is not None:
            return
        referral = rl.invite(
            referral_id=referral_id, origin=rl.Origin.PARTNER_MEMBER, referrer=referrer,
            now=now, code=notice.referral_code if rl.is_valid_code(notice.referral_code) else None,
            partner_id=notice.partner_id,
        )
        self.referrals.sign_up(conn, work, referral, notice.customer_id, now,
                               event_id=notice.event_id)

    def _write(
        self, conn: Connection, plan: _Plan, now: datetime, outcome: BatchOutcome
    ) -> None:
        results = apply_batch(conn, plan.ops, now=now) if plan.ops else []
        notes: list[tuple[Operation, str, OperationResult]] = []
        for op, customer, result in zip(plan.ops, plan.op_customers, results, strict=True):
            if isinstance(result, Rejected):
                outcome.ledger_rejections += 1
                log.error("ledger refused %s: %s %s", op.idempotency_key, result.code,
                          result.message)
            notes.append((op, customer, result))
        if plan.dirty:
            update_swaps(conn, [swap_to_row(plan.swaps[i]) for i in sorted(plan.dirty)])
        insert_swap_replies(conn, plan.replies)
        insert_ignore(conn, inbound_swaps, plan.inbound)
        self.referrals.write(conn, plan.referral)
        enqueue(conn, plan.outbox + self._ledger_notes(notes))

    def _ledger_notes(
        self, notes: Sequence[tuple[Operation, str, OperationResult]]
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
                    "topic": self._topics.points_ledger,
                    "message_key": customer.encode(),
                    "message_value": jsonfast.dumps_bytes(body),
                    "headers": {"content-type": "application/json"},
                    "dedupe_key": f"ledger:{op.idempotency_key}",
                }
            )
        return rows

    # ------------------------------------------------------------------------------ timer

    def expire_due(self, limit: int = 1000) -> int:
        """Expire overdue swaps (void, cancel at the partner) and referral windows; one
        transaction; rows locked by another worker are skipped, not waited for."""
        now = self._clock()
        plan = _Plan()
        with self._engine.begin() as conn:
            rows = conn.execute(
                select(swaps)
                .where(swaps.c.status.in_(OPEN), swaps.c.deadline_at <= now)
                .order_by(swaps.c.deadline_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).mappings().all()
            for row in rows:
                swap = swap_from_row(row)
                plan.swaps[swap.swap_id] = swap
                self._step(plan, swap, swap_saga.DeadlinePassed(swap.swap_id, now), now)
            expired_referrals = self.referrals.expire_due(conn, plan.referral, now, limit)
            if rows or expired_referrals:
                self._write(conn, plan, now, BatchOutcome())
        return len(plan.dirty) + expired_referrals

    # --------------------------------------------------------------- bank topics (referrals)

    def process_bank(self, messages: Sequence[RawMessage]) -> dict[str, int]:
        """bank.transactions and bank.customers, read in this service's own consumer group:
        onboarding with a referral code signs a referral up; a referee's purchase qualifies
        it; a refund of the qualifying purchase claws the rewards back.

        No inbox: the earning pipeline owns ``inbound_events`` for these ids. Replays are
        harmless because every step is a state transition (a signed-up referral signs up once,
        a qualified one does not qualify again) and ledger keys derive from the referral id.
        Bad messages are the earning pipeline's to dead-letter; here they are skipped.
        """
        decoders: dict[str, Decoder] = {
            self._topics.bank_transactions: bank_transaction_adapter,
            self._topics.bank_customers: bank_customer_adapter,
        }
        decoded, _ = classify(messages, decoders)
        now = self._clock()
        plan = _Plan()
        work = plan.referral
        purchases: list[Purchase] = []
        refunds: list[Refund] = []
        onboarded: list[CustomerOnboarded] = []
        seen: list[CustomerSeen] = []
        for item in decoded:
            event = item.event
            seen.append(_customer_seen(event))
            if isinstance(event, PurchaseEvent):
                purchases.append(Purchase(event.event_id, event.customer_id,
                                          event.amount_minor, aware(event.occurred_at)))
            elif isinstance(event, RefundEvent | Reversal):
                refunds.append(Refund(event.event_id, event.original_event_id,
                                      aware(event.occurred_at)))
            elif isinstance(event, CustomerOnboarded) and event.referral_code:
                onboarded.append(event)
        if not seen:
            return {}
        with self._engine.begin() as conn:
            # First, so the guards below see this batch's profiles and identity hashes too;
            # an onboarding's own evidence is never "before" itself (known_since == joined_at).
            self.referrals.note_customers(conn, seen, now)
            for event in onboarded:
                self._on_onboarded(conn, work, event, now)
            if purchases:
                self.referrals.qualify(conn, work, purchases)
            if refunds:
                self.referrals.refund(conn, work, refunds)
            for op, customer in zip(work.operations, work.op_customers, strict=True):
                plan.add(op, customer)
            plan.outbox.extend(work.outbox)
            self._write(conn, plan, now, BatchOutcome())
        return dict(work.outcomes)

    def _on_onboarded(
        self, conn: Connection, work: Work, event: CustomerOnboarded, now: datetime
    ) -> None:
        """An onboarding with a code ends in a referral row (signed up, or refused by a guard)
        or, when the code names no one, a recorded refusal ``referral:<event_id>``."""
        assert event.referral_code is not None
        try:
            code = rl.normalise_code(event.referral_code)
        except rl.InvalidReferralCode:
            self._refuse_code(work, event, rl.RefusalReason.INVALID_CODE, now)
            return
        owner = self.referrals.code_owner(conn, code)
        if owner is None:
            self._refuse_code(work, event, rl.RefusalReason.UNKNOWN_CODE, now)
            return
        origin = rl.Origin.CUSTOMER_INVITE if owner.kind == "customer" else rl.Origin.PARTNER_MEMBER
        referral_id = new_referral_id("ci", code, event.customer_id)
        if referral_id in work.rows or self.referrals.load(conn, [referral_id]):
            return  # a replay: this onboarding's outcome is already recorded
        referral = rl.invite(
            referral_id=referral_id, origin=origin, referrer=owner, now=now, code=code,
            partner_id=owner.id if owner.kind == "partner" else None,
        )
        self.referrals.sign_up(
            conn, work, referral, event.customer_id, now, identity_hash=event.identity_hash,
            joined_at=aware(event.joined_at), event_id=event.event_id,
        )

    @staticmethod
    def _refuse_code(
        work: Work, event: CustomerOnboarded, reason: rl.RefusalReason, now: datetime
    ) -> None:
        work.outcomes[f"signup:{reason}"] += 1
        work.refusals.append(referral_refusal(
            dedupe_id=event.event_id, reason_code=str(reason),
            reason=f"{event.customer_id} onboarded with code {event.referral_code!r}: "
                   f"{rl.REFUSAL_TEXT[reason]}",
            at=now, subject_id=event.event_id, event_id=event.event_id,
            customer_id=event.customer_id,
        ))

    # ------------------------------------------------------------------- app-side referrals

    def referral_code(self, customer_id: str) -> str:
        """The customer's code (created on first use)."""
        with self._engine.begin() as conn:
            return self.referrals.code_for(conn, "customer", customer_id, self._clock())

    def partner_referral_code(self, partner_id: str) -> str:
        """The code a partner's offer carries (its members open accounts with it)."""
        self._directory.get(partner_id)
        with self._engine.begin() as conn:
            return self.referrals.code_for(conn, "partner", partner_id, self._clock())

    def join_partner(
        self,
        customer_id: str,
        partner_id: str,
        partner_member_id: str,
        *,
        member_name: str | None = None,
    ) -> str:
        """Bank-originated cross-referral: the customer joins a partner program from the app.
        Creates the referral (referrer: the bank) and the member-link request carrying its id;
        it signs up when the partner links the member. Returns the referral id."""
        now = self._clock()
        referral_id = new_referral_id("pj", partner_id, customer_id)
        with self._engine.begin() as conn:
            if not self.referrals.load(conn, [referral_id]):
                work = Work()
                work.rows[referral_id] = rl.invite(
                    referral_id=referral_id, origin=rl.Origin.PARTNER_JOIN,
                    referrer=rl.Party("bank", "bank"), now=now, partner_id=partner_id,
                )
                self.referrals.write(conn, work)
        self.request_link(customer_id, partner_id, partner_member_id,
                          member_name=member_name, referral_id=referral_id)
        return referral_id

    def referral(self, referral_id: str) -> rl.Referral | None:
        with self._engine.connect() as conn:
            return self.referrals.load(conn, [referral_id], lock=False).get(referral_id)

    def referrals_of(self, referee_id: str) -> list[rl.Referral]:
        from points.exchange.referral_desk import referral_from_row
        from points.exchange.tables import referrals

        with self._engine.connect() as conn:
            rows = conn.execute(
                select(referrals).where(referrals.c.referee_id == referee_id)
                .order_by(referrals.c.invited_at, referrals.c.referral_id)
            ).mappings()
            return [referral_from_row(r) for r in rows]


# ---------------------------------------------------------------------------------- helpers


def _open_state_statement() -> Select[Any]:
    """:meth:`ExchangeService._open_state`'s one read, built once (building it per call cost
    more than running it): per quote id (``:quote_ids``), the quote's columns, the swap
    opened from it (or NULLs), the linked member id of the quote's customer at its partner,
    and that customer's points swapped to it since ``:day`` and since ``:year`` (pending and
    completed swaps)."""
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


def _customer_seen(event: Any) -> CustomerSeen:
    """A bank message as evidence that its customer exists: a profile or onboarding from its
    ``joined_at`` (with its identity hash), a transaction from when it occurred."""
    # In UTC: SQLite keeps a timestamp's wall time without its offset.
    if isinstance(event, CustomerProfile | CustomerOnboarded):
        return CustomerSeen(event.customer_id, event.joined_at.astimezone(UTC),
                            f"{event.event_type} {event.event_id}", event.identity_hash)
    return CustomerSeen(event.customer_id, event.occurred_at.astimezone(UTC),
                        f"{event.event_type} {event.event_id}")


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


def _link_reply_mismatch(
    row: Mapping[str, Any] | None, result: MemberLinkResult
) -> tuple[str, str] | None:
    """Why a partner's link reply decides nothing (reason code, reason), or None when it
    decides the pending link ``row``."""
    who = f"{result.customer_id} at {result.partner_id}"
    if row is None:
        return "link_not_requested", f"no member link was requested for {who}"
    if result.request_id is not None and row["request_id"] != result.request_id:
        return "link_request_unknown", (
            f"link_request_id {result.request_id!r} is not the pending request of {who} "
            f"({row['request_id']!r}, {row['status']})"
        )
    if row["partner_member_id"] != result.partner_member_id:
        return "member_id_mismatch", (
            f"the reply names member {result.partner_member_id!r}; the request for {who} "
            f"named {row['partner_member_id']!r}"
        )
    if row["status"] != "requested":
        return "link_already_decided", f"the link request of {who} is already {row['status']}"
    return None


def _reject(m: InboundMessage, code: str, reason: str) -> RejectedMessage:
    return RejectedMessage(m.topic, m.partition, m.offset, code, reason[:2000], m.key, m.value)


def _refused(order: SwapOrder, code: str, message: str) -> SwapRefused:
    return SwapRefused(order.customer_id, order.quote_id, code, message)


def _quote_from_row(row: Any) -> pc.Quote:
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
