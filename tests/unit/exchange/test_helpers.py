"""Pure helpers of the exchange: ids, outbox rows, swap rows, header normalisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from points import swap_saga
from points.exchange import swap_id_for
from points.exchange.store import bounded_id, outbox_row, swap_from_row, swap_to_row
from points.ports import OutboundMessage


def test_swap_id_is_one_per_quote_and_fits_event_ids() -> None:
    """Accepting the same quote twice names the same swap; ids stay within 64 characters."""
    assert swap_id_for("q-1") == swap_id_for("q-1") != swap_id_for("q-2")
    assert len(swap_id_for("q-" + "x" * 200)) <= 64


def test_bounded_id_keeps_short_ids_readable_and_hashes_long_ones() -> None:
    """Short parts are joined with ':'; too long ones become a stable digest under 64."""
    assert bounded_id("p", "ridehail", "ev-1") == "p:ridehail:ev-1"
    long = bounded_id("p", "ridehail", "e" * 64)
    assert len(long) <= 64 and long == bounded_id("p", "ridehail", "e" * 64)


def test_outbox_row_carries_the_signed_bytes_and_headers_unchanged() -> None:
    """The relay must publish exactly what the adapter signed."""
    message = OutboundMessage("partner.x.requests", b"c1", b'{"a":1}',
                              (("x-key-id", b"k1"), ("x-signature", b"ab")))
    row = outbox_row(message, "swap:1:request")
    assert row["message_value"] == b'{"a":1}' and row["message_key"] == b"c1"
    assert row["headers"] == {"x-key-id": "k1", "x-signature": "ab"}
    assert row["dedupe_key"] == "swap:1:request"


def test_swap_rows_round_trip() -> None:
    """A swap stored and loaded again is the same swap."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    swap = swap_saga.open_swap(
        swap_id="sw-1", customer_id="c1", partner_id="eshop", partner_member_id="E-1",
        points=1000, fee_points=10, partner_units=200, quote_id="q-1", rate_version="v1",
        requested_at=now, deadline_at=now + timedelta(minutes=2),
    ).swap
    assert swap_from_row(swap_to_row(swap)) == swap
