"""``ExchangeService.cancel_swap`` on the real PostgreSQL ledger: the customer gives up on a
swap the partner has not confirmed. One transaction voids the hold(s), marks the swap
cancelled and queues ``swap_cancelled``; it is idempotent and refuses final swaps."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from points.exchange.swap_desk import (
    CANCELLED_REASON,
    SwapNotCancellable,
    SwapNotFound,
)
from points.exchange.tables import swaps
from tests.integration.exchange.support import Exchange
from tests.integration.exchange.test_swap_saga import balance, clearing, open_swap, replies

pytestmark = pytest.mark.integration


def test_cancel_voids_the_hold_marks_the_swap_and_tells_the_partner(exchange: Exchange) -> None:
    """A pending swap with a fee (eshop): both legs are voided, the customer sees cancelled,
    the saga state is expired with the cancel reason, swap_cancelled is in the outbox, and a
    swap_replies row records who did it."""
    x = exchange
    x.fund("c1", 2000)
    x.link("c1", "eshop")
    swap_id = open_swap(x, "c1", "eshop", 1000)
    assert balance(x, "c1") == (990, 1010)  # 1000 points + 10 fee held
    x.take_requests("eshop")
    view = x.service.cancel_swap("c1", swap_id)
    assert (view.status, view.state, view.reason) == ("cancelled", "expired", CANCELLED_REASON)
    assert balance(x, "c1") == (2000, 0) and clearing(x, "eshop") == 0
    with x.engine.connect() as conn:
        row = conn.execute(select(swaps).where(swaps.c.swap_id == swap_id)).mappings().one()
    assert (row["status"], row["reason"], row["resolved_by"]) == (
        "expired", CANCELLED_REASON, "customer")
    cancel = x.pending_requests("eshop")
    assert [r["dedupe_key"] for r in cancel] == [f"swap:{swap_id}:cancel"]
    body = json.loads(cancel[0]["message_value"])
    assert (body["event_type"], body["swap_id"]) == ("swap_cancelled", swap_id)
    assert replies(x)[-1] == (swap_id, "applied", CANCELLED_REASON)
    status = x.service.swap_status("c1", swap_id)
    assert status is not None and status.status == "cancelled"
    x.verify_clean()


def test_cancel_is_idempotent(exchange: Exchange) -> None:
    """Cancelling twice returns the cancelled swap again and changes nothing more: no second
    void, no second outbox row, no second reply."""
    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    x.take_requests("ridehail")
    first = x.service.cancel_swap("c1", swap_id)
    before = (balance(x, "c1"), len(x.pending_requests("ridehail")), len(replies(x)))
    again = x.service.cancel_swap("c1", swap_id)
    assert again == first
    assert (balance(x, "c1"), len(x.pending_requests("ridehail")), len(replies(x))) == before
    x.verify_clean()


def test_cancel_refuses_a_completed_swap(exchange: Exchange) -> None:
    """Once the partner confirmed, the points are gone: cancel refuses and moves nothing."""
    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    x.round_trip("ridehail")
    assert x.service.swap_status("c1", swap_id).status == "completed"  # type: ignore[union-attr]
    with pytest.raises(SwapNotCancellable):
        x.service.cancel_swap("c1", swap_id)
    assert balance(x, "c1") == (600, 0) and clearing(x, "ridehail") == 400
    x.verify_clean()


def test_cancel_refuses_a_swap_expired_at_its_deadline(exchange: Exchange) -> None:
    """A swap the timer expired is final (deadline_passed), not cancelled: refused."""
    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    x.clock.advance(seconds=121)
    assert x.service.expire_due() == 1
    with pytest.raises(SwapNotCancellable):
        x.service.cancel_swap("c1", swap_id)
    view = x.service.swap_status("c1", swap_id)
    assert view is not None and (view.status, view.reason) == ("expired", "deadline_passed")


def test_cancel_of_another_customers_or_an_unknown_swap_is_not_found(exchange: Exchange) -> None:
    """A customer can only cancel their own swaps; another's is as unknown as a made-up id,
    and it stays pending."""
    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    with pytest.raises(SwapNotFound):
        x.service.cancel_swap("c2", swap_id)
    with pytest.raises(SwapNotFound):
        x.service.cancel_swap("c1", "sw-nope")
    assert x.service.swap_status("c1", swap_id).status == "pending"  # type: ignore[union-attr]


def test_a_confirmation_after_the_cancel_is_late_and_posts_nothing(exchange: Exchange) -> None:
    """The partner answers the original request after the customer cancelled: recorded as
    late_confirmation (reconciled through swap_cancelled), the points stay with the customer;
    the deadline timer later finds nothing to do."""
    x = exchange
    x.fund("c1", 1000)
    x.link("c1", "ridehail")
    swap_id = open_swap(x, "c1")
    request = x.take_requests("ridehail")
    x.service.cancel_swap("c1", swap_id)
    x.service.process(x.answers(request))
    assert balance(x, "c1") == (1000, 0) and clearing(x, "ridehail") == 0
    assert replies(x)[-1] == (swap_id, "ignored", "late_confirmation")
    x.clock.advance(seconds=200)
    assert x.service.expire_due() == 0
    assert x.service.swap_status("c1", swap_id).status == "cancelled"  # type: ignore[union-attr]
    x.verify_clean()


def test_cancelled_swaps_do_not_count_against_the_daily_limit(exchange: Exchange) -> None:
    """Limits count pending and completed swaps; a cancelled one frees its share (ridehail's
    daily limit is 40,000 points)."""
    x = exchange
    x.fund("c1", 80_000)
    x.link("c1", "ridehail")
    first = open_swap(x, "c1", points=40_000)
    x.service.cancel_swap("c1", first)
    x.clock.advance(seconds=1)
    second = open_swap(x, "c1", points=40_000)
    assert second != first
