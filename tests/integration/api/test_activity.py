"""GET /v1/me/activity: statement lines explained, newest first, cursor pagination."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from points.api.schemas import ActivityPage
from points.ledger import Earn, Reason

from .conftest import NOW, Api, assert_problem


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
