"""Journey: the bank's app team, calling the customer API with httpx exactly as docs/api.md
describes, against a running API process and earning worker; and an operator opening the
dashboard as docs/operations-dashboard.md describes.

What they meet (issue 12, finding 9): a member id the partner contract refuses is a 422, not
a 500; a partner membership belongs to one bank customer (409 with a reason); a body that is
not JSON is `400 invalid_json`; a 405 names every method of the path; each /ops login is its
own session and logout ends it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.journeys.harness import Journey, event_time

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """docs/api.md, "Errors": an RFC 9457 problem with a stable ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["type"].endswith("/" + code) and body["title"] and body["detail"], body
    return body


def publish_a_day(journey: Journey, customer_id: str) -> None:
    """Core banking onboards the customer, then one grocery purchase (docs/schemas)."""
    with journey.bank_producer() as bank:
        bank.send(journey.topics.bank_customers, {
            "schema_version": 1, "event_type": "customer_onboarded",
            "event_id": f"onb-{customer_id}", "customer_id": customer_id,
            "occurred_at": event_time(days_ago=2), "joined_at": event_time(days_ago=2),
            "segment": "mass"})
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_customers])
    with journey.bank_producer(compression="lz4") as bank:
        bank.send(journey.topics.bank_transactions, {
            "schema_version": 1, "event_type": "purchase", "event_id": f"{customer_id}-p1",
            "customer_id": customer_id, "amount_minor": 12_345, "currency": "CNY",
            "mcc": "5411", "merchant_id": "M-GROCER-0042", "channel": "card_present",
            "occurred_at": event_time(days_ago=0.5)})
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])


def test_the_app_sees_points_links_once_and_gets_documented_problems(journey: Journey) -> None:
    """A customer's balance and activity after a purchase; a link with characters the partner
    contract refuses is 422; a second customer linking the same membership is 409
    membership_already_linked with a reason that names the membership and not the holder;
    invalid JSON is 400 invalid_json; a 405 lists GET and POST. (Operations listing the
    refusal with ``points-ledger refusals list --json`` is not checked: that command is not
    on main yet.)"""
    journey.start_worker()
    journey.start_api()
    publish_a_day(journey, "app-alice")

    with journey.customer("app-alice") as alice, journey.customer("app-bob") as bob:
        balance = alice.get("/v1/me/balance")
        assert balance.status_code == 200, balance.text
        assert balance.json()["available"] > 0, balance.json()
        lines = alice.get("/v1/me/activity", params={"limit": 5}).json()["items"]
        assert [line["explanation"]["source_event"] for line in lines] == ["app-alice-p1"]
        assert lines[0]["kind"] == "earn"
        assert lines[0]["points"] == balance.json()["available"]

        bad = alice.post("/v1/me/links", headers={"Idempotency-Key": "link-bad"},
                         json={"partner_id": "ridehail", "partner_member_id": "o>",
                               "member_name": "."})
        body = problem(bad, 422, "validation_error")
        assert ["body", "partner_member_id"] in [e["loc"] for e in body["errors"]]

        mine = alice.post("/v1/me/links", headers={"Idempotency-Key": "link-1"},
                          json={"partner_id": "ridehail", "partner_member_id": "R-4242"})
        assert mine.status_code == 202, mine.text
        assert mine.json()["status"] == "pending"
        taken = bob.post("/v1/me/links", headers={"Idempotency-Key": "link-1"},
                         json={"partner_id": "ridehail", "partner_member_id": "R-4242"})
        reason = problem(taken, 409, "membership_already_linked")["detail"]
        assert "ridehail/R-4242" in reason and "app-alice" not in taken.text
        assert bob.get("/v1/me/links").json() == {"items": []}
        assert [i["partner_member_id"] for i in alice.get("/v1/me/links").json()["items"]] == [
            "R-4242"]

        broken = alice.post("/v1/me/earning-preview", content=b'{"amount_minor": 100,',
                            headers={"Idempotency-Key": "p-1",
                                     "Content-Type": "application/json"})
        problem(broken, 400, "invalid_json")

        wrong_method = alice.put("/v1/me/links", json={})
        problem(wrong_method, 405, "method_not_allowed")
        assert wrong_method.headers["allow"] == "GET, POST"


def test_each_ops_login_is_its_own_session_and_logout_ends_it(journey: Journey) -> None:
    """Two logins with the operator token get two different cookies, each opens the summary;
    after logging out with the first, its cookie (kept by someone) no longer opens anything
    while the second still does; a long wrong token is 401."""
    journey.start_api()
    cookies = []
    for _ in range(2):
        login = httpx.get(f"{journey.api_url}/ops/login", params={"token": journey.ops_token},
                          follow_redirects=False, timeout=30)
        assert login.status_code == 303, login.text
        cookies.append(login.cookies["points_ops"])
    first, second = cookies
    assert first != second and journey.ops_token not in first

    def summary(cookie: str) -> httpx.Response:
        return httpx.get(f"{journey.api_url}/ops/api/summary", timeout=60,
                         headers={"Cookie": f"points_ops={cookie}"})

    assert summary(first).status_code == 200
    assert summary(second).status_code == 200
    logout = httpx.get(f"{journey.api_url}/ops/logout", follow_redirects=False, timeout=30,
                       headers={"Cookie": f"points_ops={first}"})
    assert logout.status_code == 303
    problem(summary(first), 401, "unauthenticated")
    assert summary(second).status_code == 200

    wrong = httpx.get(f"{journey.api_url}/ops/login", params={"token": "x" * 600}, timeout=30,
                      follow_redirects=False)
    problem(wrong, 401, "unauthenticated")
