"""Settlement statements derived from the ledger: figures equal the clearing account's
movement to the point, the money follows the contract price, confirmations reconcile, and the
export is reproducible byte for byte."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from points.exchange import SwapOrder
from points.exchange.settlement import settle, to_csv, to_json
from points.exchange.tables import swap_replies
from points.ledger import AccountRef, account_balance
from tests.integration.exchange.support import CONFIG, START, Exchange, event

pytestmark = pytest.mark.integration


def scenario(x: Exchange) -> None:
    """Four eshop swaps: two confirmed (1000 and 2000 points, fees 10 and 20), one rejected,
    one expired and then confirmed late; and one inbound swap of 500 beans (2000 points)."""
    customers = ["a", "b", "c", "d"]
    for c in customers:
        x.fund(c, 5000)
        x.link(c, "eshop")
    quotes = x.service.quote_many(
        [("a", "eshop", 1000), ("b", "eshop", 2000), ("c", "eshop", 1000), ("d", "eshop", 1500)])
    views = x.service.open_swaps([SwapOrder(c, q.quote_id)
                                  for c, q in zip(customers, quotes, strict=True)])
    ids = [v.swap_id for v in views]  # type: ignore[union-attr]
    requests = {r["message_key"].decode(): r for r in x.take_requests("eshop")}
    x.service.process(x.answers([requests["a"], requests["b"]]))
    x.service.process([x.signed("eshop", event(
        "swap_rejected", "c", "eshop", "rej-c", x.clock.now, swap_id=ids[2],
        reason_code="limit_exceeded", reason="monthly bean limit"))])
    x.clock.advance(seconds=200)
    x.service.expire_due()
    x.service.process(x.answers([requests["d"]]))  # late confirmation: recorded, not posted
    x.service.process([x.signed("eshop", event(
        "inbound_swap", "a", "eshop", "in-1", x.clock.now, swap_id="es-1",
        partner_reference="EIN-1", partner_points=500))])


def test_statement_equals_the_ledger_and_prices_the_net_at_the_contract_rate(
    exchange: Exchange,
) -> None:
    """out 3000, in 2000, net 1000 = the clearing balance; fees 30; 1000 points at 1.90 CNY
    per 1000 = 190 fen owed by the bank; both confirmations matched; the late confirmation is
    the one discrepancy (the partner must reverse its credit)."""
    x = exchange
    scenario(x)
    partner = CONFIG.get("eshop")
    with x.engine.connect() as conn:
        s = settle(conn, partner, START - timedelta(days=1), START + timedelta(days=1))
        clearing = account_balance(conn, AccountRef.clearing("bank", "eshop"))
    assert (s.points_out, s.points_in, s.clearing_other) == (3000, 2000, 0)
    assert s.net_points == clearing == 1000
    assert s.fee_points == 30
    assert s.points_amount_minor == 190 and s.net_amount_minor == 190
    assert (s.swaps_completed, s.inbound_swaps, s.confirmations_matched) == (2, 1, 2)
    assert [(d.kind, d.points) for d in s.discrepancies] == [("late_confirmation", 1500)]
    assert not s.reconciled
    assert sum(ln.points for ln in s.lines if ln.kind in ("swap_out", "swap_in")) == clearing
    x.verify_clean()


def test_export_is_reproducible_byte_for_byte_and_empty_periods_are_zero(
    exchange: Exchange,
) -> None:
    """Two runs over the same ledger give identical JSON and CSV bytes; the CSV totals agree
    with the JSON; a period before any activity settles to zero and reconciles."""
    x = exchange
    scenario(x)
    partner = CONFIG.get("eshop")
    period = (START - timedelta(days=1), START + timedelta(days=1))
    with x.engine.connect() as conn:
        first = settle(conn, partner, *period)
    with x.engine.connect() as conn:
        second = settle(conn, partner, *period)
        empty = settle(conn, partner, START - timedelta(days=9), START - timedelta(days=8))
    assert to_json(first) == to_json(second) and to_csv(first) == to_csv(second)
    data = json.loads(to_json(first))
    rows = list(csv.DictReader(io.StringIO(to_csv(first).decode())))
    totals = {r["kind"]: r for r in rows if r["kind"].startswith("total:")}
    assert int(totals["total:net_points"]["points"]) == data["net_points"] == 1000
    assert int(totals["total:net_amount_minor"]["amount_minor"]) == data["net_amount_minor"]
    assert (empty.net_points, empty.net_amount_minor, empty.reconciled) == (0, 0, True)


def test_a_late_confirmation_resent_under_a_new_event_id_is_one_dispute_in_csv_and_json(
    exchange: Exchange,
) -> None:
    """The partner re-sends its late confirmation of the expired swap under a new event id
    and partner reference: the swap is still one dispute, and the CSV export carries exactly
    the disputed items the JSON export lists (one ``discrepancy:<kind>`` row per swap, and a
    ``total:discrepancies`` row); the next period does not count the re-send again."""
    x = exchange
    scenario(x)
    with x.engine.connect() as conn:
        late = conn.execute(select(swap_replies).where(
            swap_replies.c.reason == "late_confirmation")).mappings().one()
    x.clock.advance(hours=1)
    x.service.process([x.signed("eshop", event(
        "swap_confirmed", "d", "eshop", "late-resent", x.clock.now, swap_id=late["swap_id"],
        partner_reference="ES-RESENT", points=late["points"],
        partner_points=late["partner_units"]))])
    with x.engine.connect() as conn:
        resent = conn.execute(select(func.count()).select_from(swap_replies).where(
            swap_replies.c.reason == "late_confirmation")).scalar_one()
        s = settle(conn, CONFIG.get("eshop"), START - timedelta(days=1), START + timedelta(days=1))
        later = settle(conn, CONFIG.get("eshop"), x.clock.now - timedelta(minutes=1),
                       x.clock.now + timedelta(days=1))
    assert resent == 2  # both replies recorded ...
    assert [(d.kind, d.swap_id) for d in s.discrepancies] == [
        ("late_confirmation", late["swap_id"])]  # ... one dispute
    assert later.discrepancies == ()
    listed = json.loads(to_json(s))["discrepancies"]
    rows = list(csv.DictReader(io.StringIO(to_csv(s).decode())))
    disputed = [r for r in rows if r["kind"].startswith("discrepancy:")]
    assert [(r["kind"], r["entry_key"], r["customer_id"], r["reference"], int(r["points"]))
            for r in disputed] == [(f"discrepancy:{d['kind']}", d["swap_id"], d["customer_id"],
                                    d["reference"], d["points"]) for d in listed]
    total = next(r for r in rows if r["kind"] == "total:discrepancies")
    assert int(total["points"]) == len(listed) == 1
