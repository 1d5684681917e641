"""GET /v1/me/activity: statement lines explained, newest first, cursor pagination."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from points.api.schemas import ActivityPage
from points.ledger import (
    Earn,
    Hold,
    PostHold,
    Reason,
    Rejected,
    Spend,
    VoidHold,
    apply_batch,
)

from .conftest import NOW, Api, assert_problem, bearer


def _every_page(api: Api, *, limit: int) -> list[dict[str, Any]]:
    """Alice's lines, following next_cursor from the first page to the last."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get("/v1/me/activity", limit=limit, **({"cursor": cursor} if cursor else {}))
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def test_a_purchase_line_explains_every_rule_that_fired(api: Api) -> None:
    """The earning record's lines come back with their explanations, ruleset version and
    source event; a refund's clawback names the purchase it takes back from."""
    api.earn([api.feed.purchase("p1", "alice", 12_345, mcc="5812")])
    api.earn([api.feed.refund("r1", "alice", "p1", 12_345)])
    page = ActivityPage.model_validate(api.get("/v1/me/activity").json())
    clawback, earn = page.items
    assert earn.kind == "earn" and earn.points == 246 + 100
    assert earn.explanation.source_event == "p1"
    assert earn.explanation.ruleset_version == "api-test-1"
    assert [(r.rule_id, r.points) for r in earn.explanation.rules] == [
        ("base-dining", 246), ("first-swipe", 100)]
    assert "2 per 100 minor units" in earn.explanation.rules[0].explanation
    assert clawback.kind == "clawback" and clawback.points == -346
    assert clawback.explanation.source_event == "r1"
    assert "r1 refunds p1" in clawback.explanation.summary
    assert page.next_cursor is None


def test_app_activity_and_campaign_lines_are_explained_from_the_rules(api: Api) -> None:
    """A check-in has no purchase record: its rule's description explains it; a campaign
    named on the entry appears in the explanation."""
    api.earn([api.feed.check_in("c1", "alice", NOW - timedelta(hours=2))])
    api.apply([Earn("promo-1", "alice", 30, NOW + timedelta(days=300),
                    reason=Reason(rule_ids=("double-days",), campaign="double-days-2026",
                                  source_event="promo-evt-1"))])
    promo, check_in = api.get("/v1/me/activity").json()["items"]
    assert check_in["explanation"]["rules"] == [
        {"rule_id": "daily-checkin", "kind": "social", "points": 5,
         "explanation": "Daily check-in"}]
    assert promo["explanation"]["campaign"] == "double-days-2026"
    assert "campaign double-days-2026" in promo["explanation"]["summary"]


def test_pages_follow_the_cursor_to_the_end_without_gaps_or_repeats(api: Api) -> None:
    """25 entries in pages of 10: 10, 10, 5, newest first, each exactly once."""
    api.apply([Earn(f"e-{i:02d}", "alice", i + 1, NOW + timedelta(days=100))
               for i in range(25)])
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        body = api.get("/v1/me/activity", **params).json()
        seen += [item["points"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(range(25, 0, -1))


def test_another_customers_entries_never_appear(api: Api) -> None:
    """Bob's entries are not in Alice's activity, whatever cursor she sends."""
    api.apply([Earn("b-1", "bob", 999, NOW + timedelta(days=100)),
               Earn("a-1", "alice", 1, NOW + timedelta(days=100))])
    body = api.get("/v1/me/activity", cursor="ZTo5OTk5OTk").json()  # "e:999999"
    assert [i["points"] for i in body["items"]] == [1]
    assert "999" not in str([i["points"] for i in body["items"]])


def test_a_bad_cursor_or_limit_is_a_problem(api: Api) -> None:
    """Cursors this API did not issue and limits out of range are 422 problems."""
    assert_problem(api.get("/v1/me/activity", cursor="!!!"), 422, "invalid_cursor")
    assert_problem(api.get("/v1/me/activity", cursor="eDox"), 422, "invalid_cursor")
    assert_problem(api.get("/v1/me/activity", limit=0), 422, "validation_error")
    assert_problem(api.get("/v1/me/activity", limit=1000), 422, "validation_error")


def test_a_customer_without_entries_gets_an_empty_page(api: Api) -> None:
    """No accounts, no lines, no cursor."""
    assert api.get("/v1/me/activity").json() == {"items": [], "next_cursor": None}


def test_rejected_requests_never_appear(api: Api) -> None:
    """A spend the wallet cannot cover is recorded as rejected by the ledger: the activity
    lists committed entries only (it has a header but moved nothing)."""
    api.apply([Earn("a-1", "alice", 10, NOW + timedelta(days=100))])
    with api.engine.begin() as conn:
        (result,) = apply_batch(conn, [Spend("s-too-much", "alice", 500)], now=NOW)
    assert isinstance(result, Rejected)
    body = api.get("/v1/me/activity").json()
    assert [(i["kind"], i["points"]) for i in body["items"]] == [("earn", 10)]


def test_a_cursor_pages_the_same_lines_when_newer_entries_commit(api: Api) -> None:
    """Entries committed after the first page was read do not shift the next page: the
    cursor names an entry, and the next page is exactly the older ones, each once."""
    api.apply([Earn(f"e-{i}", "alice", i + 1, NOW + timedelta(days=100)) for i in range(5)])
    first = api.get("/v1/me/activity", limit=2).json()
    api.apply([Earn(f"late-{i}", "alice", 100 + i, NOW + timedelta(days=100))
               for i in range(3)])
    rest = api.get("/v1/me/activity", limit=10, cursor=first["next_cursor"]).json()
    assert [i["points"] for i in first["items"]] == [5, 4]
    assert [i["points"] for i in rest["items"]] == [3, 2, 1]
    assert rest["next_cursor"] is None
    newest = api.get("/v1/me/activity", limit=3).json()
    assert [i["points"] for i in newest["items"]] == [102, 101, 100]


def test_lines_between_the_customers_own_accounts_show_both_sides(api: Api) -> None:
    """A hold moves points from available to held (one line, both deltas); a spend and an
    expired hold are their own lines; paging by one gives the same lines as one page."""
    api.apply([Earn("a-1", "alice", 100, NOW + timedelta(days=100)),
               Hold("h-1", "alice", 30, NOW + timedelta(days=1), to_partner="ridehail"),
               Spend("s-1", "alice", 20),
               VoidHold("v-1", "h-1")])
    body = api.get("/v1/me/activity").json()
    lines = [(i["kind"], i["points"], i["held_delta"], i["debt_delta"]) for i in body["items"]]
    assert lines == [("void", 30, -30, 0), ("spend", -20, 0, 0), ("hold", -30, 30, 0),
                     ("earn", 100, 0, 0)]
    assert _every_page(api, limit=1) == body["items"]


def test_a_hold_says_what_the_points_are_reserved_for(api: Api) -> None:
    """A swap's hold reads as reserved for a swap; one the gifts desk made (its reason's
    campaign ``red_packet`` or ``gift``) as reserved for a red packet or a gift, never as a
    swap to a partner program."""
    api.apply([Earn("a-1", "alice", 1_000, NOW + timedelta(days=100)),
               Hold("h-swap", "alice", 100, NOW + timedelta(days=1), to_partner="ridehail"),
               Hold("h-packet", "alice", 200, NOW + timedelta(days=1), to_partner="ridehail",
                    reason=Reason(campaign="red_packet", source_event="p_1")),
               Hold("h-gift", "alice", 50, NOW + timedelta(days=1), to_partner="ridehail",
                    reason=Reason(campaign="gift", source_event="g_1"))])
    holds = [i["explanation"]["summary"] for i in api.get("/v1/me/activity").json()["items"]
             if i["kind"] == "hold"]
    assert holds == ["points reserved for a gift; campaign gift",
                     "points reserved for a red packet; campaign red_packet",
                     "points reserved for a swap"]


def test_entries_with_two_legs_on_one_account_never_push_a_line_off_its_page(
    api: Api,
) -> None:
    """A partly posted hold is one entry with two legs out of the held account (posted and
    returned). Two of them on top of a fully posted hold: paging by three still lists every
    line once, in the order of one long page (none is skipped between two pages)."""
    api.apply([Earn("a-1", "alice", 1_000, NOW + timedelta(days=100))]
              + [Hold(f"h-{i}", "alice", 300, NOW + timedelta(days=1), to_partner="ridehail")
                 for i in range(3)]
              + [PostHold("p-2", "h-2"), PostHold("p-1", "h-1", 100),
                 PostHold("p-0", "h-0", 100)])
    everything = api.get("/v1/me/activity", limit=100).json()["items"]
    assert [i["kind"] for i in everything] == ["post"] * 3 + ["hold"] * 3 + ["earn"]
    assert _every_page(api, limit=3) == everything


def test_the_body_is_byte_for_byte_what_the_schema_writes(api: Api) -> None:
    """The page is serialised without the response model (speed): it must still be exactly
    the documented ActivityPage, as pydantic would have written it."""
    api.earn([api.feed.purchase("p1", "alice", 12_345, mcc="5812")])
    api.earn([api.feed.refund("r1", "alice", "p1", 12_345)])
    api.apply([Earn("promo-1", "alice", 30, NOW + timedelta(days=300),
                    reason=Reason(rule_ids=("double-days",), campaign="double-days-2026",
                                  source_event="promo-evt-1", note="a note"))]
              + [Earn(f"e-{i}", "alice", i + 1, NOW + timedelta(days=100)) for i in range(3)])
    response = api.get("/v1/me/activity", limit=4)
    assert response.headers["content-type"] == "application/json"
    page = ActivityPage.model_validate_json(response.content)
    assert page.model_dump_json().encode() == response.content
    assert page.next_cursor is not None


def test_the_postgresql_fast_path_answers_exactly_as_the_portable_route(
    api: Api, migrated_url: str
) -> None:
    """On PostgreSQL the activity is one statement served by points.api.fastpath; with it
    switched off, the FastAPI route reads the same pages through the portable reads (five
    statements): byte-identical answers for first pages, cursor pages, refusals (bad limit,
    bad cursor, repeated or unknown parameters, no token) and another customer."""
    api.earn([api.feed.purchase("p1", "alice", 12_345, mcc="5812")])
    api.earn([api.feed.refund("r1", "alice", "p1", 12_345)])
    api.earn([api.feed.check_in("c1", "alice", NOW - timedelta(hours=2))])
    api.apply([Earn("a-1", "alice", 100, NOW + timedelta(days=100)),
               Hold("h-1", "alice", 30, NOW + timedelta(days=1), to_partner="ridehail"),
               Spend("s-1", "alice", 20),
               VoidHold("v-1", "h-1"),
               Earn("promo-1", "alice", 30, NOW + timedelta(days=300),
                    reason=Reason(rule_ids=("double-days",), campaign="double-days-2026",
                                  source_event="promo-evt-1", note="a note")),
               Earn("b-1", "bob", 7, NOW + timedelta(days=100))])
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    middle = api.get("/v1/me/activity", limit=3).json()["next_cursor"]
    queries = ["", "?limit=3", f"?cursor={middle}", f"?limit=2&cursor={middle}",
               f"?cursor={middle}&limit=100", "?limit=0", "?limit=101", "?limit=x",
               "?cursor=!!!", "?cursor=eDox", "?limit=2&limit=3", "?limit=2&other=1"]
    requests = [(q, bearer("alice")) for q in queries] + [
        ("", bearer("bob")), (f"?cursor={middle}", bearer("bob")), ("", {}),
        ("?limit=2", {"Authorization": "Bearer x.y.z"})]

    def answers() -> list[tuple[int, str, str]]:
        out = []
        for query, headers in requests:
            r = api.client.get(f"/v1/me/activity{query}", headers=headers)
            out.append((r.status_code, r.headers["content-type"], r.text))
        return out

    fast = answers()
    reader, ctx.pg = ctx.pg, None
    try:
        plain = answers()
    finally:
        ctx.pg = reader
    assert fast == plain
    assert (reader is not None) == migrated_url.startswith("postgresql")
    assert [status for status, _, _ in fast] == [200] * 5 + [422] * 5 + [200, 200] + [
        200, 200, 401, 401]
    assert len(json.loads(fast[1][2])["items"]) == 3
