"""The set-based swap writes (points/exchange/store.py): one JSON parameter on PostgreSQL,
executemany on SQLite; both store exactly the rows given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from points import swap_saga
from points.db import make_engine
from points.exchange.store import (
    insert_swap_replies,
    insert_swaps,
    swap_from_row,
    swap_to_row,
    update_swaps,
)
from points.exchange.tables import swap_replies, swaps
from points.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    chosen = sqlite_url if request.param == "sqlite" else request.getfixturevalue("fresh_pg_url")
    upgrade(chosen)
    return chosen


def _swap(i: int, now: datetime) -> swap_saga.Swap:
    return swap_saga.open_swap(
        swap_id=f"sw-{i}", customer_id=f"c{i}", partner_id="eshop", partner_member_id=f"E-{i}",
        points=1000 + i, fee_points=10, partner_units=200, quote_id=f"q-{i}",
        rate_version="v1", requested_at=now, deadline_at=now + timedelta(minutes=2),
    ).swap


def test_insert_update_and_replies_round_trip(url: str) -> None:
    """Insert update and replies round trip."""
    engine = make_engine(url)
    now = datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)
    opened = [_swap(i, now) for i in range(3)]
    with engine.begin() as conn:
        insert_swaps(conn, [swap_to_row(s) for s in opened])
        insert_swaps(conn, [])
    later = now + timedelta(seconds=5)
    moved = swap_saga.apply(swap_saga.apply(opened[1], swap_saga.HoldPlaced("sw-1", now)).swap,
                       swap_saga.PartnerConfirmed("sw-1", "eshop", "ev-1", "REF-'\"1", 1001, 200,
                                             later))
    assert isinstance(moved, swap_saga.Transition)
    reply = {"swap_id": "sw-1", "partner_id": "eshop", "event_id": "ev-1",
             "event_type": "swap_confirmed", "outcome": "applied", "reason": "partner_confirmed",
             "detail": "quotes ' \" and \\ survive", "points": 1001, "partner_units": 200,
             "partner_reference": "REF-'\"1", "at": later}
    ignored = {**reply, "event_id": "timer", "outcome": "ignored", "points": None,
               "partner_units": None, "partner_reference": None}
    with engine.begin() as conn:
        update_swaps(conn, [swap_to_row(moved.swap)])
        update_swaps(conn, [])
        insert_swap_replies(conn, [reply, ignored])
        insert_swap_replies(conn, [])
    with engine.connect() as conn:
        stored = {r["swap_id"]: swap_from_row(r) for r in conn.execute(select(swaps)).mappings()}
        replies = conn.execute(select(swap_replies).order_by(swap_replies.c.id)).mappings().all()
    engine.dispose()
    assert stored == {"sw-0": opened[0], "sw-1": moved.swap, "sw-2": opened[2]}
    assert [r["event_id"] for r in replies] == ["ev-1", "timer"]
    got = {k: replies[0][k] for k in reply}
    got["at"] = got["at"] if got["at"].tzinfo else got["at"].replace(tzinfo=UTC)
    assert got == reply
    assert replies[1]["points"] is None and replies[1]["partner_reference"] is None
