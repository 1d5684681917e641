"""Pure rules of the ledger: amounts, FIFO lot consumption, clawback and hold arithmetic.

Standard library only; the batch engine calls these, and unit tests call them directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from points.errors import (
    ClawbackExceedsEarning,
    InsufficientPoints,
    InvalidAmount,
    InvalidRequest,
)
from points.ledger.model import AMOUNT_MAX

__all__ = [
    "LotPlan",
    "check_amount",
    "check_aware",
    "plan_consumption",
    "resolve_hold",
    "split_clawback",
    "split_earning",
    "split_restore",
]

LotPlan = list[tuple[int, int]]
"""``(lot_id, points)`` pairs in the order they were taken."""


def check_amount(amount: object, *, what: str = "amount") -> int:
    """An amount is a positive ``int`` (not bool) no larger than ``AMOUNT_MAX``."""
    if type(amount) is not int:
        raise InvalidAmount(f"{what} must be an integer, got {type(amount).__name__}")
    if amount <= 0:
        raise InvalidAmount(f"{what} must be positive, got {amount}")
    if amount > AMOUNT_MAX:
        raise InvalidAmount(f"{what} {amount} exceeds the limit {AMOUNT_MAX}")
    return amount


def check_aware(value: datetime, *, what: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidRequest(f"{what} must carry a time zone")
    return value


def plan_consumption(
    lots: Iterable[tuple[int, int]], amount: int, *, first: int | None = None
) -> LotPlan:
    """Take ``amount`` from lots given soonest-expiry first as ``(lot_id, remaining)``.

    ``first`` names a lot to drain before the FIFO order (a clawback takes back the clawed
    earning's own lot first). Raises InsufficientPoints when the lots cannot cover it.
    """
    ordered = list(lots)
    if first is not None:
        ordered.sort(key=lambda lot: lot[0] != first)  # stable: keeps FIFO for the rest
    plan: LotPlan = []
    need = amount
    for lot_id, remaining in ordered:
        if need == 0:
            break
        if remaining <= 0:
            continue
        take = min(remaining, need)
        plan.append((lot_id, take))
        need -= take
    if need:
        raise InsufficientPoints(f"lots cover {amount - need} of {amount} points")
    return plan


def split_earning(amount: int, debt: int) -> tuple[int, int]:
    """Split an earning into (pays down receivable debt, reaches the wallet): debt first."""
    to_debt = min(amount, max(debt, 0))
    return to_debt, amount - to_debt


def split_clawback(amount: int, wallet_balance: int) -> tuple[int, int]:
    """Split a clawback into (taken from the wallet, becomes receivable debt)."""
    from_wallet = min(amount, max(wallet_balance, 0))
    return from_wallet, amount - from_wallet


def clawable(earned: int, clawed_before: int, requested: int | None) -> int:
    """How much a clawback takes: all that is left by default, never more than is left."""
    left = earned - clawed_before
    if requested is None:
        if left <= 0:
            raise ClawbackExceedsEarning("the earning has been clawed back in full")
        return left
    check_amount(requested)
    if requested > left:
        raise ClawbackExceedsEarning(f"clawback of {requested} exceeds the {left} left")
    return requested


def resolve_hold(held: int, post: int | None) -> tuple[int, int]:
    """Split a hold into (posted, returned to the wallet); ``post=None`` posts all of it."""
    if post is None:
        return held, 0
    check_amount(post)
    if post > held:
        raise InvalidAmount(f"cannot post {post}: the hold is {held}")
    return post, held - post


def split_restore(consumed: Sequence[tuple[int, int]], posted: int) -> LotPlan:
    """Which lots get points back when only ``posted`` of a hold is used.

    The posted part is taken from the front of the hold's plan (the soonest-expiring lots),
    so what returns goes to the lots that expire last.
    """
    restore: LotPlan = []
    skip = posted
    for lot_id, points in consumed:
        used = min(points, skip)
        skip -= used
        if points - used:
            restore.append((lot_id, points - used))
    return restore
