"""Points swaps between the bank's program and a partner's: the outbound saga, inbound credits.

Standard library only. Nothing here touches the ledger or Kafka: each transition is a pure
function that returns the swap's new state, the ledger action the caller must apply *in the
same transaction* as the new state, and the reason it records.

Outbound (bank points -> partner units)::

    open_swap()          -> requested   action PlaceHold (points + fee leave the wallet)
    HoldPlaced           -> pending     action none      (the request goes out via the outbox)
    HoldRefused          -> rejected    action none      (e.g. insufficient_points)
    PartnerConfirmed     -> completed   action PostHold  (points to the partner's clearing)
    PartnerRejected      -> rejected    action VoidHold  (points back to the wallet)
    DeadlinePassed       -> expired     action VoidHold  (and the caller cancels at the partner)

A message that must change nothing returns :class:`Ignored` with a stable reason code
(:class:`IgnoreReason`): duplicates, late replies, replies for unknown swaps or from another
partner. Kafka delivers at least once and partners retry, so these are normal, not errors.

Time: every input carries ``at``, the time *we* processed it (not the partner's clock). The
confirmation deadline is authoritative: a pending swap that sees any reply at or after its
deadline expires instead (the ledger would refuse to post a timed-out hold anyway).

Inbound (partner units -> bank points): :func:`inbound_points` converts, rounding down in the
bank's favour, and :func:`inbound_idempotency_key` derives the ledger key from the partner's
own reference, so a re-sent inbound swap credits once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final, TypeAlias

__all__ = [
    "CUSTOMER_STATUS",
    "DeadlinePassed",
    "HoldLeg",
    "HoldPlaced",
    "HoldRefused",
    "IgnoreReason",
    "Ignored",
    "InboundCredit",
    "LedgerAction",
    "NoLedgerAction",
    "PartnerConfirmed",
    "PartnerRejected",
    "PlaceHold",
    "PostHold",
    "Swap",
    "SwapInput",
    "SwapStatus",
    "Transition",
    "VoidHold",
    "apply",
    "convert_ceil",
    "convert_floor",
    "customer_status",
    "inbound_credit",
    "inbound_idempotency_key",
    "inbound_points",
    "open_swap",
]


# --------------------------------------------------------------------------------- arithmetic


def convert_floor(amount: int, num: int, den: int) -> int:
    """``amount * num / den`` rounded toward zero: the bank's favour when the customer receives."""
    _check_ratio(amount, num, den)
    return amount * num // den


def convert_ceil(amount: int, num: int, den: int) -> int:
    """``amount * num / den`` rounded up: the bank's favour when the customer pays (fees)."""
    _check_ratio(amount, num, den)
    return -((-amount * num) // den)


def _check_ratio(amount: int, num: int, den: int) -> None:
    # bool is an int; a True slipping in as 1 point would be a bug upstream.
    for name, value in (("amount", amount), ("num", num), ("den", den)):
        if type(value) is not int:
            raise TypeError(f"{name} must be int, not {type(value).__name__}")
    if amount < 0 or num < 0 or den <= 0:
        raise ValueError(f"need amount >= 0, num >= 0 and den > 0, got {amount} * {num}/{den}")


# -------------------------------------------------------------------------------------- state


class SwapStatus(StrEnum):
    REQUESTED = "requested"
    PENDING = "pending"
    COMPLETED = "completed"
    REJECTED = "rejected"
    EXPIRED = "expired"


FINAL_STATUSES: Final = frozenset({SwapStatus.COMPLETED, SwapStatus.REJECTED, SwapStatus.EXPIRED})

CUSTOMER_STATUS: Final[dict[SwapStatus, str]] = {
    # Between the hold and the request the customer's points are already gone: "pending".
    SwapStatus.REQUESTED: "pending",
    SwapStatus.PENDING: "pending",
    SwapStatus.COMPLETED: "completed",
    SwapStatus.REJECTED: "rejected",
    SwapStatus.EXPIRED: "expired",
}


@dataclass(frozen=True, slots=True)
class Swap:
    """One outbound swap. ``points`` go to the partner; ``fee_points`` are the bank's fee."""

    swap_id: str
    customer_id: str
    partner_id: str
    partner_member_id: str
    points: int
    fee_points: int
    partner_units: int
    quote_id: str
    rate_version: str
    requested_at: datetime
    deadline_at: datetime
    status: SwapStatus = SwapStatus.REQUESTED
    reason: str = "requested"
    partner_reference: str | None = None
    resolved_by: str | None = None
    """Event id of the partner reply (or the timer) that resolved the swap."""
    updated_at: datetime | None = None

    @property
    def hold_key(self) -> str:
        return f"swap:{self.swap_id}:hold"

    @property
    def fee_hold_key(self) -> str | None:
        return f"swap:{self.swap_id}:fee-hold" if self.fee_points else None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def customer_status(swap: Swap) -> tuple[str, str]:
    """What the app shows: one of pending, completed, rejected, expired, and the reason."""
    return CUSTOMER_STATUS[swap.status], swap.reason


# ---------------------------------------------------------------------------- ledger actions


@dataclass(frozen=True, slots=True)
class HoldLeg:
    """One two-phase transfer of a swap. ``to_partner`` None means the bank (the fee)."""

    hold_key: str
    amount: int
    to_partner: str | None


@dataclass(frozen=True, slots=True)
class PlaceHold:
    """Move ``points + fee`` from the wallet to held, until ``timeout_at``."""

    customer_id: str
    legs: tuple[HoldLeg, ...]
    timeout_at: datetime


@dataclass(frozen=True, slots=True)
class PostHold:
    """Post every leg (points to the partner's clearing account, the fee to the bank).

    ``idempotency_keys`` pairs with ``hold_keys``: one ledger operation per leg.
    """

    hold_keys: tuple[str, ...]
    idempotency_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VoidHold:
    """Return every leg to the wallet."""

    hold_keys: tuple[str, ...]
    idempotency_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NoLedgerAction:
    """The transition changes state only."""


LedgerAction: TypeAlias = PlaceHold | PostHold | VoidHold | NoLedgerAction
NO_ACTION: Final = NoLedgerAction()


# ------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class HoldPlaced:
    swap_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class HoldRefused:
    swap_id: str
    reason_code: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PartnerConfirmed:
    swap_id: str
    partner_id: str
    event_id: str
    partner_reference: str
    points: int
    partner_units: int
    at: datetime


@dataclass(frozen=True, slots=True)
class PartnerRejected:
    swap_id: str
    partner_id: str
    event_id: str
    reason_code: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DeadlinePassed:
    """The timer found the swap; ``at`` is the timer's now."""

    swap_id: str
    at: datetime


SwapInput: TypeAlias = (
    HoldPlaced | HoldRefused | PartnerConfirmed | PartnerRejected | DeadlinePassed
)


# ------------------------------------------------------------------------------------ outcomes


class IgnoreReason(StrEnum):
    UNKNOWN_SWAP = "unknown_swap"
    WRONG_PARTNER = "wrong_partner"
    DUPLICATE_CONFIRMATION = "duplicate_confirmation"
    DUPLICATE_REJECTION = "duplicate_rejection"
    LATE_CONFIRMATION = "late_confirmation"
    """The partner confirmed after we expired the swap: reconcile (the partner may have
    credited its member; our cancellation request asks it to reverse)."""
    LATE_REJECTION = "late_rejection"
    ALREADY_RESOLVED = "already_resolved"
    """A reply contradicting the final state (confirmed after rejected, or the reverse)."""
    AMOUNT_MISMATCH = "amount_mismatch"
    """The confirmation names other amounts than we requested: never post it; reconcile."""
    NOT_PENDING = "not_pending"
    """A partner reply before our hold was placed (cannot happen with one transaction)."""
    HOLD_ALREADY_RECORDED = "hold_already_recorded"
    DEADLINE_NOT_REACHED = "deadline_not_reached"
    ALREADY_FINAL = "already_final"


@dataclass(frozen=True, slots=True)
class Transition:
    swap: Swap
    action: LedgerAction
    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    swap: Swap | None
    reason: IgnoreReason
    detail: str


# --------------------------------------------------------------------------------- transitions


def open_swap(
    *,
    swap_id: str,
    customer_id: str,
    partner_id: str,
    partner_member_id: str,
    points: int,
    fee_points: int,
    partner_units: int,
    quote_id: str,
    rate_version: str,
    requested_at: datetime,
    deadline_at: datetime,
) -> Transition:
    """A new swap in ``requested`` and the hold that takes points (and fee) from the wallet."""
    if points <= 0 or partner_units <= 0 or fee_points < 0:
        raise ValueError("a swap moves positive points and units, and a fee >= 0")
    if requested_at.tzinfo is None or deadline_at <= requested_at:
        raise ValueError("times must be aware, and the deadline after the request")
    swap = Swap(
        swap_id=swap_id,
        customer_id=customer_id,
        partner_id=partner_id,
        partner_member_id=partner_member_id,
        points=points,
        fee_points=fee_points,
        partner_units=partner_units,
        quote_id=quote_id,
        rate_version=rate_version,
        requested_at=requested_at,
        deadline_at=deadline_at,
        updated_at=requested_at,
    )
    legs = [HoldLeg(swap.hold_key, points, partner_id)]
    if swap.fee_hold_key is not None:
        legs.append(HoldLeg(swap.fee_hold_key, fee_points, None))
    return Transition(swap, PlaceHold(customer_id, tuple(legs), deadline_at), "requested")


def _hold_keys(swap: Swap) -> tuple[str, ...]:
    return (swap.hold_key,) if swap.fee_hold_key is None else (swap.hold_key, swap.fee_hold_key)


def _post(swap: Swap) -> PostHold:
    keys = _hold_keys(swap)
    return PostHold(keys, tuple(f"{k}:post" for k in keys))


def _void(swap: Swap) -> VoidHold:
    keys = _hold_keys(swap)
    return VoidHold(keys, tuple(f"{k}:void" for k in keys))


def _move(
    swap: Swap,
    status: SwapStatus,
    reason: str,
    at: datetime,
    *,
    partner_reference: str | None = None,
    resolved_by: str | None = None,
) -> Swap:
    return replace(
        swap,
        status=status,
        reason=reason,
        updated_at=at,
        partner_reference=partner_reference or swap.partner_reference,
        resolved_by=resolved_by or swap.resolved_by,
    )


def apply(swap: Swap | None, event: SwapInput) -> Transition | Ignored:
    """The one entry point: the new state and ledger action, or why nothing changes."""
    if swap is None:
        return Ignored(None, IgnoreReason.UNKNOWN_SWAP, f"no swap {event.swap_id!r}")
    if event.swap_id != swap.swap_id:
        raise ValueError(f"event for swap {event.swap_id!r} applied to {swap.swap_id!r}")
    if isinstance(event, HoldPlaced | HoldRefused):
        return _on_hold_result(swap, event)
    if isinstance(event, DeadlinePassed):
        return _on_deadline(swap, event)
    if event.partner_id != swap.partner_id:
        # A partner acts only as itself: another partner cannot resolve this swap.
        return Ignored(
            swap,
            IgnoreReason.WRONG_PARTNER,
            f"swap belongs to {swap.partner_id!r}, reply came from {event.partner_id!r}",
        )
    if isinstance(event, PartnerConfirmed):
        return _on_confirmed(swap, event)
    return _on_rejected(swap, event)


def _on_hold_result(swap: Swap, event: HoldPlaced | HoldRefused) -> Transition | Ignored:
    if swap.status is not SwapStatus.REQUESTED:
        return Ignored(swap, IgnoreReason.HOLD_ALREADY_RECORDED, f"swap is {swap.status}")
    if isinstance(event, HoldPlaced):
        return Transition(
            _move(swap, SwapStatus.PENDING, "awaiting_partner", event.at),
            NO_ACTION,
            "awaiting_partner",
        )
    # Nothing was held, so there is nothing to void.
    return Transition(
        _move(swap, SwapStatus.REJECTED, event.reason_code, event.at),
        NO_ACTION,
        event.reason_code,
    )


def _expire(swap: Swap, at: datetime, reason: str) -> Transition:
    return Transition(_move(swap, SwapStatus.EXPIRED, reason, at), _void(swap), reason)


def _on_confirmed(swap: Swap, event: PartnerConfirmed) -> Transition | Ignored:
    if swap.status is SwapStatus.REQUESTED:
        return Ignored(swap, IgnoreReason.NOT_PENDING, "confirmation before the hold")
    if swap.status is SwapStatus.COMPLETED:
        return Ignored(
            swap,
            IgnoreReason.DUPLICATE_CONFIRMATION,
            f"already completed by {swap.resolved_by!r}; reply {event.event_id!r}",
        )
    if swap.status is SwapStatus.EXPIRED:
        return Ignored(
            swap,
            IgnoreReason.LATE_CONFIRMATION,
            f"confirmed by {event.event_id!r} (ref {event.partner_reference!r}) after expiry",
        )
    if swap.status is SwapStatus.REJECTED:
        return Ignored(swap, IgnoreReason.ALREADY_RESOLVED, "confirmation after rejection")
    if event.at >= swap.deadline_at:
        return _expire(swap, event.at, f"deadline_passed: confirmation {event.event_id} too late")
    if (event.points, event.partner_units) != (swap.points, swap.partner_units):
        return Ignored(
            swap,
            IgnoreReason.AMOUNT_MISMATCH,
            f"requested {swap.points} points -> {swap.partner_units} units, partner confirmed "
            f"{event.points} -> {event.partner_units}",
        )
    moved = _move(
        swap,
        SwapStatus.COMPLETED,
        "partner_confirmed",
        event.at,
        partner_reference=event.partner_reference,
        resolved_by=event.event_id,
    )
    return Transition(moved, _post(swap), "partner_confirmed")


def _on_rejected(swap: Swap, event: PartnerRejected) -> Transition | Ignored:
    if swap.status is SwapStatus.REQUESTED:
        return Ignored(swap, IgnoreReason.NOT_PENDING, "rejection before the hold")
    if swap.status is SwapStatus.REJECTED:
        return Ignored(swap, IgnoreReason.DUPLICATE_REJECTION, f"reply {event.event_id!r}")
    if swap.status is SwapStatus.EXPIRED:
        return Ignored(swap, IgnoreReason.LATE_REJECTION, f"reply {event.event_id!r}")
    if swap.status is SwapStatus.COMPLETED:
        return Ignored(swap, IgnoreReason.ALREADY_RESOLVED, "rejection after confirmation")
    if event.at >= swap.deadline_at:
        return _expire(swap, event.at, f"deadline_passed: rejection {event.event_id} too late")
    reason = f"partner_rejected: {event.reason_code}"
    moved = _move(swap, SwapStatus.REJECTED, reason, event.at, resolved_by=event.event_id)
    return Transition(moved, _void(swap), reason)


def _on_deadline(swap: Swap, event: DeadlinePassed) -> Transition | Ignored:
    if swap.is_final:
        return Ignored(swap, IgnoreReason.ALREADY_FINAL, f"swap is {swap.status}")
    if event.at < swap.deadline_at:
        return Ignored(
            swap, IgnoreReason.DEADLINE_NOT_REACHED, f"deadline is {swap.deadline_at.isoformat()}"
        )
    # Also from ``requested``: the hold went out with the swap row, so void it; voiding a hold
    # the ledger never placed is a stored, harmless rejection there (hold_not_found).
    return _expire(swap, event.at, "deadline_passed")


# ------------------------------------------------------------------------------------ inbound


def inbound_points(partner_units: int, rate_num: int, rate_den: int) -> int:
    """Bank points for ``partner_units``: ``units * num / den`` rounded down (bank's favour)."""
    return convert_floor(partner_units, rate_num, rate_den)


def inbound_idempotency_key(partner_id: str, partner_reference: str) -> str:
    """The ledger key of an inbound credit: the partner's own reference, scoped to the partner.

    A partner re-sending the same inbound swap (under a new event id, after its own restart)
    keeps its reference, so the credit happens once.
    """
    if not partner_id or not partner_reference:
        raise ValueError("partner id and reference are required")
    return f"inbound:{partner_id}:{partner_reference}"


@dataclass(frozen=True, slots=True)
class InboundCredit:
    """Credit ``points`` to the wallet from the partner's clearing account (ledger Earn, swap)."""

    idempotency_key: str
    customer_id: str
    partner_id: str
    partner_reference: str
    partner_units: int
    points: int


def inbound_credit(
    *,
    partner_id: str,
    partner_reference: str,
    customer_id: str,
    partner_units: int,
    rate_num: int,
    rate_den: int,
) -> InboundCredit:
    points = inbound_points(partner_units, rate_num, rate_den)
    if points <= 0:
        raise ValueError(f"{partner_units} partner units convert to no bank points")
    return InboundCredit(
        idempotency_key=inbound_idempotency_key(partner_id, partner_reference),
        customer_id=customer_id,
        partner_id=partner_id,
        partner_reference=partner_reference,
        partner_units=partner_units,
        points=points,
    )
