"""``swaps list|show`` and ``links list|show``: operations see a customer's swaps (with their
replies and ledger legs) and member links (with the refusals about them), on SQLite and
PostgreSQL; unknown ids exit 3, bad filters exit 2."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from points.db import make_engine
from points.exchange import SwapOrder
from tests.integration.cli.support import cli, cli_json
from tests.integration.exchange.support import Clock, Exchange, event, fresh_keys_env


@pytest.fixture
def exchange(migrated_url: str) -> Iterator[Exchange]:
    engine = make_engine(migrated_url)
    yield Exchange(engine, Clock(), f"t{uuid.uuid4().hex[:8]}.", fresh_keys_env())
    engine.dispose()


def swap_two(x: Exchange) -> tuple[str, str]:
    """ann swaps 1000 points to eshop (confirmed) and 1500 (rejected by the partner)."""
    x.fund("ann", 5000)
    x.link("ann", "eshop")
    quotes = x.service.quote_many([("ann", "eshop", 1000), ("ann", "eshop", 1500)])
    views = x.service.open_swaps([SwapOrder("ann", q.quote_id) for q in quotes])
    done, refused = (v.swap_id for v in views)  # type: ignore[union-attr]
    requests = x.take_requests("eshop")
    x.service.process(x.answers(requests[:1]))
    x.service.process([x.signed("eshop", event(
        "swap_rejected", "ann", "eshop", "rej-1", x.clock.now, swap_id=refused,
        reason_code="limit_exceeded", reason="monthly limit"))])
    return done, refused


def test_swaps_list_filters_and_show_has_replies_and_ledger_legs(
    migrated_url: str, exchange: Exchange
) -> None:
    """``swaps list`` finds ann's two swaps and filters by state and reason; ``swaps show``
    lists the confirmation and the hold and its post with their legs; an unknown swap exits
    3 and an unknown state 2."""
    done, refused = swap_two(exchange)
    listed = cli_json(migrated_url, "swaps", "list", "--customer", "ann")["swaps"]
    assert sorted((s["swap_id"], s["state"]) for s in listed) == sorted(
        [(done, "completed"), (refused, "rejected")])
    by_reason = cli_json(migrated_url, "swaps", "list", "--partner", "eshop",
                         "--reason", "limit_exceeded")["swaps"]
    assert [s["swap_id"] for s in by_reason] == [refused]
    assert cli_json(migrated_url, "swaps", "list", "--state", "pending")["swaps"] == []

    shown = cli_json(migrated_url, "swaps", "show", done)
    assert (shown["state"], shown["points"], shown["customer_id"]) == ("completed", 1000, "ann")
    assert [(r["event_type"], r["outcome"]) for r in shown["replies"]] == [
        ("swap_confirmed", "applied")]
    keys = [e["idempotency_key"] for e in shown["ledger"]]
    assert f"swap:{done}:hold" in keys and f"swap:{done}:hold:post" in keys
    hold = next(e for e in shown["ledger"] if e["idempotency_key"] == f"swap:{done}:hold")
    assert sum(leg["amount"] for leg in hold["legs"]) == 1000

    assert cli(migrated_url, "swaps", "show", "sw-nope").exit_code == 3
    assert cli(migrated_url, "swaps", "list", "--state", "lost").exit_code == 2


def test_links_list_and_show_with_the_refusals_about_a_link(
    migrated_url: str, exchange: Exchange
) -> None:
    """bob's pending link and ann's linked one are listed by state; ``links show`` finds
    bob's by request id and by CUSTOMER/PARTNER, with the refusal of a partner reply that
    named another member; an unknown link exits 3."""
    x = exchange
    x.link("ann", "ridehail")
    x.service.request_link("bob", "ridehail", "M-bob")
    x.service.process([x.signed("ridehail", event(
        "member_linked", "bob", "ridehail", "ml-x", x.clock.now,
        partner_member_id="M-other"))])
    pending = cli_json(migrated_url, "links", "list", "--state", "requested")["links"]
    assert [(li["link_id"], li["partner_member_id"]) for li in pending] == [
        ("bob/ridehail", "M-bob")]
    linked = cli_json(migrated_url, "links", "list", "--customer", "ann")["links"]
    assert [li["state"] for li in linked] == ["linked"]

    by_request = cli_json(migrated_url, "links", "show", pending[0]["request_id"])
    by_pair = cli_json(migrated_url, "links", "show", "bob/ridehail")
    assert by_request == by_pair
    assert [(r["event_id"], r["reason_code"]) for r in by_pair["refusals"]] == [
        ("ml-x", "member_id_mismatch")]
    assert cli(migrated_url, "links", "show", "nobody/ridehail").exit_code == 3
