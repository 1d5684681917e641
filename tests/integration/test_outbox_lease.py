"""Only one relay at a time holds the outbox lease, on PostgreSQL and on SQLite."""

from __future__ import annotations

from sqlalchemy import Engine

from points.db import make_engine
from points.outbox import OutboxStore


def test_a_second_relay_cannot_take_the_lease_until_the_first_returns_it(engine: Engine) -> None:
    """Two relays (two engines, as two processes would have) never relay the same round."""
    other = make_engine(str(engine.url.render_as_string(hide_password=False)))
    try:
        first, second = OutboxStore(engine), OutboxStore(other)
        with first.lease() as got_first:
            assert got_first
            with second.lease() as got_second:
                assert not got_second
        with second.lease() as got_after:
            assert got_after
    finally:
        other.dispose()
