"""Pure decisions of the exchange: which pending link a partner's reply decides (issue 12,
finding 7), partner-purchase ledger keys, and the settlement CSV carrying the JSON's
disputed items (finding 8)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from points.exchange.link_desk import _link_reply_mismatch
from points.exchange.partner_earning import partner_earn_key, partner_record_id
from points.exchange.settlement import Discrepancy, Statement, to_csv, to_json
from points.ports import MemberLinkResult


def pending(**changes: Any) -> dict[str, Any]:
    return {"customer_id": "c1", "partner_id": "ridehail", "partner_member_id": "R-1",
            "status": "requested", "request_id": "link:c1:1", **changes}


def reply(request_id: str | None = "link:c1:1", member: str = "R-1") -> MemberLinkResult:
    return MemberLinkResult("c1", "ridehail", member, True, request_id)


def test_a_link_reply_decides_the_pending_request_with_or_without_its_id() -> None:
    """Echoing the request's event_id, or naming the same member without it, decides it."""
    assert _link_reply_mismatch(pending(), reply()) is None
    assert _link_reply_mismatch(pending(), reply(request_id=None)) is None


def test_a_link_reply_that_decides_nothing_says_why() -> None:
    """No request, another request id, another member, an already decided link: each has its
    reason code (the caller records it as a refusal)."""
    cases = [
        (None, reply(), "link_not_requested"),
        (pending(), reply(request_id="link:c1:0"), "link_request_unknown"),
        (pending(), reply(request_id=None, member="R-2"), "member_id_mismatch"),
        (pending(), reply(member="R-2"), "member_id_mismatch"),
        (pending(status="linked"), reply(), "link_already_decided"),
        (pending(status="rejected"), reply(request_id=None), "link_already_decided"),
    ]
    for row, result, code in cases:
        found = _link_reply_mismatch(row, result)
        assert found is not None and found[0] == code, (row, result, found)


def test_partner_purchase_keys_name_the_partner_and_fit_the_ledger() -> None:
    """Two partners may use one event id: their earnings are two keys; long ids stay bounded
    and the ledger key is the earning worker's ``earn:<record id>``."""
    assert partner_earn_key("ridehail", "e-1") == "earn:p:ridehail:e-1"
    assert partner_earn_key("ridehail", "e-1") != partner_earn_key("eshop", "e-1")
    long = partner_record_id("ridehail", "e" * 64)
    assert len(long) <= 64 and partner_earn_key("ridehail", "e" * 64) == f"earn:{long}"


def statement(*disputes: Discrepancy) -> Statement:
    return Statement(
        partner_id="eshop", period_start="2026-03-01T00:00:00Z",
        period_end="2026-03-02T00:00:00Z", currency="CNY", price_minor=190, per_points=1000,
        points_out=0, points_in=0, clearing_other=0, net_points=0, fee_points=0,
        points_amount_minor=0, referral_fees_minor=0, referral_rewards_minor=0,
        net_amount_minor=0, swaps_completed=0, inbound_swaps=0, confirmations_matched=0,
        reconciled=not disputes, discrepancies=disputes,
    )


def test_the_csv_lists_every_disputed_swap_the_json_lists() -> None:
    """One ``discrepancy:<kind>`` row per JSON discrepancy (swap id, customer, reference,
    points) and a ``total:discrepancies`` row with their number."""
    s = statement(
        Discrepancy("late_confirmation", "sw-1", "ES-1", 1500, "2026-03-01T01:00:00Z", "d"),
        Discrepancy("amount_mismatch", "sw-2", "ES-2", 700, "2026-03-01T02:00:00Z", "e"),
    )
    listed = json.loads(to_json(s))["discrepancies"]
    rows = list(csv.DictReader(io.StringIO(to_csv(s).decode())))
    disputed = [r for r in rows if r["kind"].startswith("discrepancy:")]
    assert [(r["kind"], r["entry_key"], r["customer_id"], r["reference"], int(r["points"]),
             r["created_at"]) for r in disputed] == [
        (f"discrepancy:{d['kind']}", d["swap_id"], d["customer_id"], d["reference"],
         d["points"], d["at"]) for d in listed]
    total = [r for r in rows if r["kind"] == "total:discrepancies"]
    assert [int(r["points"]) for r in total] == [2]
