"""Swap quotes (rounding, fees, limits) and the outbound swap state machine, every path."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from points import swap_saga
from points.errors import PointsError
from points.partners import (
    DailyLimitExceeded,
    InboundNotOffered,
    MemberNotLinked,
    NotAMultiple,
    PartnerConfig,
    PartnerError,
    PartnerUnavailable,
    QuoteExpired,
    QuoteMismatch,
    RateChanged,
    SwapAboveMaximum,
    SwapBelowMinimum,
    YearlyLimitExceeded,
    check_limits,
    check_quote,
    inbound_quote,
    open_swap_from_quote,
    quote,
    settlement_amount_minor,
)
from points.swap_saga import (
    DeadlinePassed,
    HoldLeg,
    HoldPlaced,
    HoldRefused,
    Ignored,
    IgnoreReason,
    NoLedgerAction,
    PartnerConfirmed,
    PartnerRejected,
    PlaceHold,
    PostHold,
    Swap,
    SwapStatus,
    Transition,
    VoidHold,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def partner(**overrides: Any) -> PartnerConfig:
    """A partner with simple figures: 3 points -> 1 unit, min 300, max 30 000, step 100."""
    data: dict[str, Any] = {
        "id": "ridehail",
        "name": "RideHail Go",
        "unit": "ride_coin",
        "rate_version": "v1",
        "outbound": {
            "rate": {"num": 1, "den": 3},
            "min_points": 300,
            "max_points": 30_000,
            "multiple_points": 100,
        },
        "fees": {"fixed_points": 0, "rate_bp": 0},
        "inbound": {"enabled": True, "rate": {"num": 7, "den": 3}, "min_units": 10},
        "limits": {"daily_points": 10_000, "yearly_points": 50_000},
        "settlement": {"currency": "CNY", "price_minor": 250, "per_points": 1000},
        "signing_keys": [{"key_id": "ridehail-k1", "env": "POINTS_PARTNER_KEY_RIDEHAIL"}],
        "confirmation_deadline_s": 120,
        "quote_ttl_s": 300,
    }
    data.update(overrides)
    return PartnerConfig.model_validate(data)


# ------------------------------------------------------------------------------------ quotes


@pytest.mark.parametrize(
    ("num", "den", "points", "units"),
    [
        (1, 3, 300, 100),  # exact
        (1, 3, 400, 133),  # 133.33 -> 133: the bank keeps the fraction
        (1, 3, 500, 166),  # 166.67 -> 166, not 167
        (2, 3, 400, 266),  # 266.67 -> 266
        (1, 20, 10_000, 500),
        (5, 1, 300, 1500),
    ],
)
def test_outbound_units_round_down_in_the_banks_favour(
    num: int, den: int, points: int, units: int
) -> None:
    """Partner units are points * num / den rounded down, never to the nearest."""
    rules = {"rate": {"num": num, "den": den}, "min_points": 300, "max_points": 30_000}
    q = quote(partner(outbound=rules), points, NOW)
    assert (q.points, q.partner_units) == (points, units)


@pytest.mark.parametrize(
    ("fees", "points", "fee"),
    [
        ({}, 1000, 0),
        ({"fixed_points": 200}, 1000, 200),
        ({"rate_bp": 100}, 1000, 10),  # 1 % exactly
        ({"rate_bp": 150}, 2300, 35),  # 34.5 -> 35: a fee rounds up
        ({"rate_bp": 150}, 300, 5),  # 4.5 -> 5
        ({"rate_bp": 100, "min_points": 25}, 1000, 25),
        ({"rate_bp": 100, "max_points": 50}, 20_000, 50),
        ({"fixed_points": 50, "rate_bp": 100}, 1000, 60),
    ],
)
def test_the_fee_is_its_own_amount_rounded_up_and_clamped(
    fees: dict[str, int], points: int, fee: int
) -> None:
    """Fee = fixed + percentage (rounded up), clamped to [min, max]; points are untouched and
    the wallet is debited points + fee."""
    q = quote(partner(fees=fees), points, NOW)
    assert (q.points, q.fee_points, q.total_points) == (points, fee, points + fee)


@pytest.mark.parametrize(
    ("points", "error", "code"),
    [
        (200, SwapBelowMinimum, "swap_below_minimum"),
        (30_100, SwapAboveMaximum, "swap_above_maximum"),
        (350, NotAMultiple, "not_a_multiple"),
    ],
)
def test_amounts_outside_the_programs_rules_are_refused_with_stable_codes(
    points: int, error: type[PartnerError], code: str
) -> None:
    """Min, max and multiple are checked before any pricing."""
    with pytest.raises(error) as caught:
        quote(partner(), points, NOW)
    assert caught.value.code == code
    assert isinstance(caught.value, PointsError)


def test_quotes_refuse_floats_and_disabled_partners() -> None:
    """Points are ints (a float is a bug upstream); a switched-off partner gives no quotes."""
    with pytest.raises(TypeError):
        quote(partner(), 300.0, NOW)  # type: ignore[arg-type]
    with pytest.raises(PartnerUnavailable):
        quote(partner(enabled=False), 300, NOW)


def test_a_quote_carries_id_rate_version_and_expiry() -> None:
    """The quote names the rate version it used and expires after the configured TTL; the same
    request at the same instant is the same quote."""
    q = quote(partner(), 900, NOW, customer_id="c-1")
    assert q.rate_version == "v1"
    assert q.expires_at == NOW + timedelta(seconds=300)
    assert q.quote_id == quote(partner(), 900, NOW, customer_id="c-1").quote_id
    assert q.quote_id != quote(partner(), 900, NOW, customer_id="c-2").quote_id


@pytest.mark.parametrize(
    ("case", "error", "code"),
    [
        ("expired", QuoteExpired, "quote_expired"),
        ("rate_changed", RateChanged, "rate_changed"),
        ("other_partner", QuoteMismatch, "quote_mismatch"),
    ],
)
def test_a_quote_is_only_good_while_fresh_current_and_for_its_partner(
    case: str, error: type[PartnerError], code: str
) -> None:
    """Accepting a quote after its expiry, after a rate change, or at another partner fails."""
    q = quote(partner(), 900, NOW)
    target, at = partner(), NOW + timedelta(seconds=10)
    if case == "expired":
        at = q.expires_at
    elif case == "rate_changed":
        target = partner(rate_version="v2")
    else:
        target = partner(id="eshop")
    with pytest.raises(error) as caught:
        check_quote(q, target, at)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("today", "year", "points", "error"),
    [
        (0, 0, 10_000, None),  # exactly the daily limit
        (9_000, 9_000, 1_000, None),
        (9_100, 9_100, 1_000, DailyLimitExceeded),
        (0, 49_000, 1_000, None),  # exactly the yearly limit
        (0, 49_100, 1_000, YearlyLimitExceeded),
    ],
)
def test_daily_and_yearly_limits_per_customer(
    today: int, year: int, points: int, error: type[PartnerError] | None
) -> None:
    """A swap may reach a limit but not pass it; the daily limit is checked first."""
    if error is None:
        check_limits(partner(), points, swapped_today=today, swapped_this_year=year)
    else:
        with pytest.raises(error):
            check_limits(partner(), points, swapped_today=today, swapped_this_year=year)


def test_opening_a_swap_from_a_quote_checks_link_and_limits_then_holds_points_and_fee() -> None:
    """The swap starts in requested with one hold leg to the partner and one fee leg to the
    bank, timing out at the confirmation deadline."""
    p = partner(fees={"fixed_points": 20})
    q = quote(p, 900, NOW)
    with pytest.raises(MemberNotLinked):
        open_swap_from_quote(
            q, p, swap_id="s1", customer_id="c1", partner_member_id=None, now=NOW,
            swapped_today=0, swapped_this_year=0,
        )
    with pytest.raises(DailyLimitExceeded):
        open_swap_from_quote(
            q, p, swap_id="s1", customer_id="c1", partner_member_id="m1", now=NOW,
            swapped_today=9_500, swapped_this_year=0,
        )
    t = open_swap_from_quote(
        q, p, swap_id="s1", customer_id="c1", partner_member_id="m1", now=NOW,
        swapped_today=0, swapped_this_year=0,
    )
    deadline = NOW + timedelta(seconds=120)
    assert t.swap.status is SwapStatus.REQUESTED
    assert (t.swap.points, t.swap.fee_points, t.swap.partner_units) == (900, 20, 300)
    assert t.action == PlaceHold(
        "c1",
        (HoldLeg("swap:s1:hold", 900, "ridehail"), HoldLeg("swap:s1:fee-hold", 20, None)),
        deadline,
    )


def test_a_swap_without_fee_has_a_single_hold_leg() -> None:
    """No zero-amount ledger operations: a free swap holds only the points."""
    t = new_swap(fee_points=0)
    assert isinstance(t.action, PlaceHold)
    assert t.action.legs == (HoldLeg("swap:s1:hold", 900, "ridehail"),)


@pytest.mark.parametrize(
    ("units", "points"),
    [(10, 23), (30, 70), (11, 25)],  # 23.33 -> 23, 70 exact, 25.67 -> 25
)
def test_inbound_units_convert_to_points_rounded_down(units: int, points: int) -> None:
    """Partner units moved in become bank points at the inbound rate, rounded down."""
    assert inbound_quote(partner(), units).points == points


def test_inbound_is_refused_where_the_partner_does_not_offer_it_or_below_its_minimum() -> None:
    """An airline's miles cannot come in; tiny inbound amounts are below the minimum."""
    with pytest.raises(InboundNotOffered):
        inbound_quote(partner(inbound={"enabled": False}), 100)
    with pytest.raises(SwapBelowMinimum):
        inbound_quote(partner(), 9)


@pytest.mark.parametrize(
    ("net_points", "amount_minor"),
    [(1000, 250), (1003, 250), (1004, 251), (-1000, -250), (-1003, -251), (0, 0)],
)
def test_settlement_prices_net_points_in_the_banks_favour(
    net_points: int, amount_minor: int
) -> None:
    """At 250 fen per 1000 points the bank pays rounded down (1003 -> 250.75 -> 250) and is
    paid rounded up (-1003 -> 251)."""
    assert settlement_amount_minor(partner(), net_points) == amount_minor


@given(
    num=st.integers(1, 10_000),
    den=st.integers(1, 10_000),
    points=st.integers(0, 10**12),
    fee_bp=st.integers(0, 10_000),
)
def test_rounding_never_favours_the_customer(num: int, den: int, points: int, fee_bp: int) -> None:
    """Property: units received are at most the exact value (and less by under one unit); fees
    paid are at least the exact value (and more by under one point)."""
    units = swap_saga.convert_floor(points, num, den)
    assert units * den <= points * num < (units + 1) * den
    fee = swap_saga.convert_ceil(points, fee_bp, 10_000)
    assert (fee - 1) * 10_000 < points * fee_bp <= fee * 10_000


@given(points=st.integers(300, 30_000).map(lambda p: p - p % 100), num=st.integers(1, 50),
       den=st.integers(1, 50))
def test_a_quote_never_gives_more_units_than_the_points_are_worth(
    points: int, num: int, den: int
) -> None:
    """Property on whole quotes: partner_units * den <= points * num for any configured rate."""
    rules = {"rate": {"num": num, "den": den}, "min_points": 300, "max_points": 30_000,
             "multiple_points": 100}
    try:
        p = partner(outbound=rules)
    except ValueError:  # a rate so small that the minimum buys nothing is refused by config
        return
    q = quote(p, points, NOW)
    assert q.partner_units * den <= points * num


# ------------------------------------------------------------------------- the state machine


def new_swap(fee_points: int = 10) -> Transition:
    return swap_saga.open_swap(
        swap_id="s1",
        customer_id="c1",
        partner_id="ridehail",
        partner_member_id="m1",
        points=900,
        fee_points=fee_points,
        partner_units=300,
        quote_id="q1",
        rate_version="v1",
        requested_at=NOW,
        deadline_at=NOW + timedelta(seconds=120),
    )


def at(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


def confirmed(seconds: int = 5, partner_id: str = "ridehail", **kw: Any) -> PartnerConfirmed:
    fields: dict[str, Any] = {"points": 900, "partner_units": 300, "event_id": "e-conf"}
    fields.update(kw)
    return PartnerConfirmed(
        swap_id="s1", partner_id=partner_id, partner_reference="RH-1", at=at(seconds), **fields
    )


def rejected(seconds: int = 5, partner_id: str = "ridehail", event_id: str = "e-rej") -> (
    PartnerRejected
):
    return PartnerRejected(
        swap_id="s1",
        partner_id=partner_id,
        event_id=event_id,
        reason_code="member_not_found",
        reason="no such member",
        at=at(seconds),
    )


def in_state(status: SwapStatus) -> Swap:
    """A swap driven to ``status`` through the real transitions."""
    swap = new_swap().swap
    if status is SwapStatus.REQUESTED:
        return swap
    swap = transition(swap, HoldPlaced("s1", at(1))).swap
    if status is SwapStatus.COMPLETED:
        swap = transition(swap, confirmed()).swap
    elif status is SwapStatus.REJECTED:
        swap = transition(swap, rejected()).swap
    elif status is SwapStatus.EXPIRED:
        swap = transition(swap, DeadlinePassed("s1", at(120))).swap
    assert swap.status is status
    return swap


def transition(swap: Swap | None, event: swap_saga.SwapInput) -> Transition:
    result = swap_saga.apply(swap, event)
    assert isinstance(result, Transition), result
    return result


LEGS = ("swap:s1:hold", "swap:s1:fee-hold")
POST = PostHold(LEGS, tuple(f"{k}:post" for k in LEGS))
VOID = VoidHold(LEGS, tuple(f"{k}:void" for k in LEGS))


@pytest.mark.parametrize(
    ("start", "event", "status", "action", "reason"),
    [
        (SwapStatus.REQUESTED, HoldPlaced("s1", at(1)), SwapStatus.PENDING, NoLedgerAction(),
         "awaiting_partner"),
        (SwapStatus.REQUESTED, HoldRefused("s1", "insufficient_points", at(1)),
         SwapStatus.REJECTED, NoLedgerAction(), "insufficient_points"),
        (SwapStatus.PENDING, confirmed(), SwapStatus.COMPLETED, POST, "partner_confirmed"),
        (SwapStatus.PENDING, rejected(), SwapStatus.REJECTED, VOID,
         "partner_rejected: member_not_found"),
        (SwapStatus.PENDING, DeadlinePassed("s1", at(120)), SwapStatus.EXPIRED, VOID,
         "deadline_passed"),
        (SwapStatus.REQUESTED, DeadlinePassed("s1", at(121)), SwapStatus.EXPIRED, VOID,
         "deadline_passed"),
        (SwapStatus.PENDING, confirmed(seconds=120), SwapStatus.EXPIRED, VOID,
         "deadline_passed: confirmation e-conf too late"),
        (SwapStatus.PENDING, rejected(seconds=200), SwapStatus.EXPIRED, VOID,
         "deadline_passed: rejection e-rej too late"),
    ],
)
def test_every_transition_returns_state_ledger_action_and_reason(
    start: SwapStatus,
    event: swap_saga.SwapInput,
    status: SwapStatus,
    action: swap_saga.LedgerAction,
    reason: str,
) -> None:
    """requested -> pending | rejected; pending -> completed (post) | rejected (void) |
    expired (void); a reply at or after the deadline expires the swap instead."""
    result = transition(in_state(start), event)
    assert (result.swap.status, result.action, result.reason) == (status, action, reason)
    assert result.swap.reason == reason
    assert result.swap.updated_at == event.at


def test_completion_records_the_partners_reference_and_reply() -> None:
    """The completed swap keeps the partner's reference (for settlement and support)."""
    swap = in_state(SwapStatus.COMPLETED)
    assert (swap.partner_reference, swap.resolved_by) == ("RH-1", "e-conf")


@pytest.mark.parametrize(
    ("start", "event", "reason"),
    [
        (None, confirmed(), IgnoreReason.UNKNOWN_SWAP),
        (None, rejected(), IgnoreReason.UNKNOWN_SWAP),
        (None, DeadlinePassed("s1", at(500)), IgnoreReason.UNKNOWN_SWAP),
        (SwapStatus.PENDING, confirmed(partner_id="eshop"), IgnoreReason.WRONG_PARTNER),
        (SwapStatus.PENDING, rejected(partner_id="eshop"), IgnoreReason.WRONG_PARTNER),
        (SwapStatus.COMPLETED, confirmed(), IgnoreReason.DUPLICATE_CONFIRMATION),
        (SwapStatus.COMPLETED, confirmed(event_id="e-conf-resent"),
         IgnoreReason.DUPLICATE_CONFIRMATION),
        (SwapStatus.REJECTED, rejected(), IgnoreReason.DUPLICATE_REJECTION),
        (SwapStatus.EXPIRED, confirmed(seconds=300), IgnoreReason.LATE_CONFIRMATION),
        (SwapStatus.EXPIRED, rejected(seconds=300), IgnoreReason.LATE_REJECTION),
        (SwapStatus.REJECTED, confirmed(), IgnoreReason.ALREADY_RESOLVED),
        (SwapStatus.COMPLETED, rejected(), IgnoreReason.ALREADY_RESOLVED),
        (SwapStatus.PENDING, confirmed(points=1000), IgnoreReason.AMOUNT_MISMATCH),
        (SwapStatus.PENDING, confirmed(partner_units=301), IgnoreReason.AMOUNT_MISMATCH),
        (SwapStatus.REQUESTED, confirmed(), IgnoreReason.NOT_PENDING),
        (SwapStatus.REQUESTED, rejected(), IgnoreReason.NOT_PENDING),
        (SwapStatus.PENDING, HoldPlaced("s1", at(2)), IgnoreReason.HOLD_ALREADY_RECORDED),
        (SwapStatus.COMPLETED, HoldRefused("s1", "x", at(2)), IgnoreReason.HOLD_ALREADY_RECORDED),
        (SwapStatus.PENDING, DeadlinePassed("s1", at(119)), IgnoreReason.DEADLINE_NOT_REACHED),
        (SwapStatus.COMPLETED, DeadlinePassed("s1", at(500)), IgnoreReason.ALREADY_FINAL),
        (SwapStatus.REJECTED, DeadlinePassed("s1", at(500)), IgnoreReason.ALREADY_FINAL),
        (SwapStatus.EXPIRED, DeadlinePassed("s1", at(500)), IgnoreReason.ALREADY_FINAL),
    ],
)
def test_duplicate_late_unknown_or_foreign_replies_change_nothing(
    start: SwapStatus | None, event: swap_saga.SwapInput, reason: IgnoreReason
) -> None:
    """Every message that must not move the swap returns Ignored with a stable reason, and the
    swap it returns is the unchanged input."""
    swap = None if start is None else in_state(start)
    result = swap_saga.apply(swap, event)
    assert isinstance(result, Ignored)
    assert result.reason is reason
    assert result.swap is swap
    assert result.detail


def test_the_ignore_reasons_are_stable_codes() -> None:
    """Stored and counted by operations; renaming one is a breaking change."""
    assert {r.value for r in IgnoreReason} == {
        "unknown_swap", "wrong_partner", "duplicate_confirmation", "duplicate_rejection",
        "late_confirmation", "late_rejection", "already_resolved", "amount_mismatch",
        "not_pending", "hold_already_recorded", "deadline_not_reached", "already_final",
    }


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (SwapStatus.REQUESTED, "pending"),
        (SwapStatus.PENDING, "pending"),
        (SwapStatus.COMPLETED, "completed"),
        (SwapStatus.REJECTED, "rejected"),
        (SwapStatus.EXPIRED, "expired"),
    ],
)
def test_customers_see_four_statuses_with_reasons(status: SwapStatus, shown: str) -> None:
    """The app shows pending, completed, rejected or expired, and why."""
    swap = in_state(status)
    assert swap_saga.customer_status(swap) == (shown, swap.reason)


def test_an_event_for_another_swap_is_a_programming_error() -> None:
    """Loading swap A and applying B's reply is a caller bug, not an ignorable message."""
    with pytest.raises(ValueError):
        swap_saga.apply(in_state(SwapStatus.PENDING), replace(confirmed(), swap_id="s2"))


def test_open_swap_refuses_nonpositive_amounts_and_backwards_deadlines() -> None:
    """A swap moves positive points and units and must have a future deadline."""
    t = new_swap()
    with pytest.raises(ValueError):
        swap_saga.open_swap(**{**_open_args(t.swap), "points": 0})
    with pytest.raises(ValueError):
        swap_saga.open_swap(**{**_open_args(t.swap), "deadline_at": NOW})


def _open_args(swap: Swap) -> dict[str, Any]:
    return {
        "swap_id": swap.swap_id, "customer_id": swap.customer_id, "partner_id": swap.partner_id,
        "partner_member_id": swap.partner_member_id, "points": swap.points,
        "fee_points": swap.fee_points, "partner_units": swap.partner_units,
        "quote_id": swap.quote_id, "rate_version": swap.rate_version,
        "requested_at": swap.requested_at, "deadline_at": swap.deadline_at,
    }


# -------------------------------------------------------------------------------- inbound


def test_an_inbound_credit_is_keyed_by_the_partners_reference() -> None:
    """A re-sent inbound swap (new event id, same partner reference) maps to the same ledger
    key, so the wallet is credited once; another partner's same reference does not collide."""
    credit = swap_saga.inbound_credit(
        partner_id="eshop", partner_reference="ORD-9", customer_id="c1",
        partner_units=101, rate_num=4, rate_den=3,
    )
    assert credit.idempotency_key == "inbound:eshop:ORD-9"
    assert credit.points == 134  # 134.67 rounded down
    assert swap_saga.inbound_idempotency_key("ridehail", "ORD-9") != credit.idempotency_key


def test_an_inbound_amount_worth_no_points_is_refused() -> None:
    """Crediting zero points would be a pointless (and invalid) ledger entry."""
    with pytest.raises(ValueError):
        swap_saga.inbound_credit(
            partner_id="eshop", partner_reference="ORD-9", customer_id="c1",
            partner_units=1, rate_num=1, rate_den=3,
        )
