"""The ledger's pure rules: amounts, FIFO lot plans, clawback, earning and hold arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from points.errors import ClawbackExceedsEarning, InsufficientPoints, InvalidAmount
from points.ledger import core
from points.ledger.model import AMOUNT_MAX


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3", AMOUNT_MAX + 1])
def test_check_amount_refuses_anything_but_a_positive_bounded_int(bad: object) -> None:
    """Amounts are positive ints (not bools, floats or strings) no larger than AMOUNT_MAX."""
    with pytest.raises(InvalidAmount):
        core.check_amount(bad)


def test_check_amount_returns_a_valid_amount() -> None:
    """A valid amount passes through unchanged, including the limit itself."""
    assert core.check_amount(1) == 1
    assert core.check_amount(AMOUNT_MAX) == AMOUNT_MAX


def test_plan_consumption_takes_lots_in_the_given_soonest_first_order() -> None:
    """FIFO: the first lot is drained before the second is touched."""
    assert core.plan_consumption([(1, 5), (2, 10)], 7) == [(1, 5), (2, 2)]


def test_plan_consumption_skips_empty_lots_and_stops_when_covered() -> None:
    """Empty lots are not recorded; lots after the amount is covered are not touched."""
    assert core.plan_consumption([(1, 0), (2, 4), (3, 9)], 4) == [(2, 4)]


def test_plan_consumption_drains_the_named_lot_first_then_fifo() -> None:
    """``first`` puts one lot ahead of the FIFO order (a clawback takes its own lot first)."""
    assert core.plan_consumption([(1, 5), (2, 5), (3, 5)], 8, first=3) == [(3, 5), (1, 3)]


def test_plan_consumption_refuses_when_lots_cannot_cover() -> None:
    """Asking for more than the lots hold is InsufficientPoints, never a partial plan."""
    with pytest.raises(InsufficientPoints):
        core.plan_consumption([(1, 5), (2, 5)], 11)


@given(
    st.lists(st.integers(min_value=0, max_value=100), max_size=8),
    st.integers(min_value=1, max_value=400),
)
def test_plan_consumption_takes_exactly_the_amount_or_refuses(
    remaining: list[int], amount: int
) -> None:
    """Any plan takes exactly ``amount``, never more than a lot holds, and only when covered."""
    lots = list(enumerate(remaining))
    if sum(remaining) < amount:
        with pytest.raises(InsufficientPoints):
            core.plan_consumption(lots, amount)
        return
    plan = core.plan_consumption(lots, amount)
    assert sum(points for _, points in plan) == amount
    for lot_id, points in plan:
        assert 0 < points <= remaining[lot_id]


def test_split_earning_pays_debt_first() -> None:
    """An earning first pays down receivable debt; only the rest reaches the wallet."""
    assert core.split_earning(100, 30) == (30, 70)
    assert core.split_earning(20, 30) == (20, 0)
    assert core.split_earning(20, 0) == (0, 20)


def test_split_clawback_turns_what_the_wallet_lacks_into_debt() -> None:
    """A clawback takes what the wallet has; the remainder becomes receivable debt."""
    assert core.split_clawback(50, 80) == (50, 0)
    assert core.split_clawback(50, 20) == (20, 30)
    assert core.split_clawback(50, 0) == (0, 50)


def test_clawable_defaults_to_what_is_left_and_refuses_more() -> None:
    """A clawback without an amount takes the rest; beyond what is left it is refused."""
    assert core.clawable(100, 30, None) == 70
    assert core.clawable(100, 30, 70) == 70
    with pytest.raises(ClawbackExceedsEarning):
        core.clawable(100, 30, 71)
    with pytest.raises(ClawbackExceedsEarning):
        core.clawable(100, 100, None)


def test_resolve_hold_posts_all_by_default_or_part_and_returns_the_rest() -> None:
    """A full post returns nothing; a partial post returns the difference."""
    assert core.resolve_hold(40, None) == (40, 0)
    assert core.resolve_hold(40, 15) == (15, 25)
    with pytest.raises(InvalidAmount):
        core.resolve_hold(40, 41)
    with pytest.raises(InvalidAmount):
        core.resolve_hold(40, 0)


def test_split_restore_returns_points_to_the_latest_expiring_lots() -> None:
    """The posted part comes off the front of the hold's plan; the rest goes back."""
    consumed = [(1, 10), (2, 10), (3, 10)]
    assert core.split_restore(consumed, 15) == [(2, 5), (3, 10)]
    assert core.split_restore(consumed, 0) == consumed
    assert core.split_restore(consumed, 30) == []
