"""GET /v1/me/refusals: only the caller's own refusals, newest first, cursor pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from points.refusals import Refusal, record_refusals
from tests.integration.api.conftest import Api, assert_problem

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def seed(api: Api) -> None:
    items = [
        Refusal(dedupe_key=f"clawback:r{n}", source="earning", subject="clawback",
                reason_code="clawback_exceeds_earning", reason=f"refund r{n} asks too much",
                at=AT + timedelta(minutes=n), subject_id=f"r{n}", event_id=f"r{n}",
                customer_id="alice")
        for n in range(5)
    ]
    items.append(Refusal(dedupe_key="referral:x1", source="referrals", subject="referral",
                         reason_code="self_referral", reason="bob referred bob", at=AT,
                         subject_id="x1", customer_id="bob"))
    with api.engine.begin() as conn:
        record_refusals(conn, items)


def test_pages_show_only_the_callers_refusals_newest_first_to_the_end(api: Api) -> None:
    """alice's five refusals in pages of two (r4 r3 | r2 r1 | r0), never bob's; bob sees his
    one with its reason code."""
    seed(api)
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        response = api.get("/v1/me/refusals", limit=2, **({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["subject_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["r4", "r3", "r2", "r1", "r0"]
    bob = api.get("/v1/me/refusals", sub="bob").json()
    assert [(i["subject"], i["reason_code"]) for i in bob["items"]] == [
        ("referral", "self_referral")]
    assert bob["next_cursor"] is None


def test_a_cursor_this_api_did_not_return_is_a_422_problem(api: Api) -> None:
    """A forged cursor is refused before any read, as on /v1/me/activity."""
    assert_problem(api.get("/v1/me/refusals", cursor="bm9wZQ"), 422, "invalid_cursor")
