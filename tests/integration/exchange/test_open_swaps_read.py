"""Accepting quotes reads everything it decides on (the quote, a swap already opened from it,
the customer's link, today's and this year's swapped points) in ONE statement; the decisions
are the ones the separate reads gave."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import delete, event

from points.exchange import SwapOrder, SwapRefused, SwapView
from points.exchange.tables import swap_quotes
from tests.integration.exchange.support import Exchange

pytestmark = pytest.mark.integration


@contextmanager
def statements(x: Exchange) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(x.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(x.engine, "before_cursor_execute", record)


def code(result: SwapView | SwapRefused) -> str:
    return result.code if isinstance(result, SwapRefused) else result.status


def test_one_read_decides_limits_links_ownership_and_replays(exchange: Exchange) -> None:
    """Pins down, for one open_swaps batch: a single statement reads quotes, swaps, links
    and usage (no other read of partner_links or swap_quotes); yesterday's swap counts for
    the year but not the day; two quotes of one customer in one batch share the daily limit
    (40,000 ridehail points: 25,000 opens, 20,000 more is daily_limit_exceeded); a quote of
    another customer and an unknown id are unknown_quote; a customer linked only to another
    partner is member_not_linked; accepting an opened quote again returns the same swap, also
    when its quote row is gone."""
    x = exchange
    x.fund("c1", 200_000)
    x.fund("c2", 200_000)
    x.link("c1", "ridehail")
    x.link("c2", "eshop")
    yesterday = x.service.request_swap("c1", x.service.quote("c1", "ridehail", 30_000).quote_id)
    assert yesterday.status == "pending"
    x.clock.advance(days=1)

    qa = x.service.quote("c1", "ridehail", 25_000)
    qb = x.service.quote("c1", "ridehail", 20_000)
    qc = x.service.quote("c1", "ridehail", 400)
    qd = x.service.quote("c2", "ridehail", 400)
    with x.engine.connect() as conn:
        state = x.service.swaps.open_state(conn, [qa.quote_id, qd.quote_id], x.clock())
    assert state.usage[("c1", "ridehail")] == (0, 30_000)
    assert state.links == {("c1", "ridehail"): "M-c1"}

    orders = [
        SwapOrder("c1", qa.quote_id),
        SwapOrder("c1", qb.quote_id),
        SwapOrder("c2", qc.quote_id),
        SwapOrder("c2", qd.quote_id),
        SwapOrder("c1", "no-such-quote"),
    ]
    with statements(x) as seen:
        results = x.service.open_swaps(orders)
    assert [code(r) for r in results] == [
        "pending",
        "daily_limit_exceeded",
        "unknown_quote",
        "member_not_linked",
        "unknown_quote",
    ]
    reads = [s for s in seen if "partner_links" in s or "swap_quotes" in s]
    assert len(reads) == 1, reads
    # the one read's single extra look-up: a swap opened from the unknown id (there is none)
    fallback = [
        s
        for s in seen
        if s.lstrip().upper().startswith("SELECT") and "FROM swaps" in s and "swap_quotes" not in s
    ]
    assert len(fallback) == 1, fallback

    opened = results[0]
    assert isinstance(opened, SwapView)
    assert x.service.open_swaps([SwapOrder("c1", qa.quote_id)]) == [opened]
    assert code(x.service.open_swaps([SwapOrder("c2", qa.quote_id)])[0]) == "unknown_quote"
    with x.engine.begin() as conn:
        conn.execute(delete(swap_quotes).where(swap_quotes.c.quote_id == qa.quote_id))
    assert x.service.open_swaps([SwapOrder("c1", qa.quote_id)]) == [opened]
    x.verify_clean()
