"""POST /v1/me/earning-preview: the real rules on the customer's real state, nothing saved;
and the Idempotency-Key contract every POST follows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from points.api.schemas import EarningPreview

from .conftest import NOW, Api, assert_problem

PATH = "/v1/me/earning-preview"
DINING = {"amount_minor": 8_850, "currency": "CNY", "mcc": "5812", "merchant_id": "m-9",
          "channel": "mobile"}


def test_preview_matches_what_the_purchase_then_earns(api: Api) -> None:
    """Preview for a first purchase says 177 + 100 first-swipe; the same purchase through
    the pipeline earns exactly that."""
    preview = EarningPreview.model_validate(api.post(PATH, DINING, "k-1").json())
    assert preview.points == 277
    assert [line.rule_id for line in preview.lines] == ["base-dining", "first-swipe"]
    assert preview.badges_awarded == ["first-swipe"]
    assert "277 points (rule set api-test-1)" in preview.explanation
    api.earn([api.feed.purchase("p1", "alice", 8_850, mcc="5812", at=NOW)])
    assert api.get("/v1/me/balance").json()["available"] == 277


def test_preview_uses_the_customers_state(api: Api) -> None:
    """After the first purchase, the first-swipe bonus is no longer in the preview; a
    partner's co-brand multiplier is."""
    api.earn([api.feed.purchase("p1", "alice", 1_000)])
    body = {**DINING, "mcc": "4121", "merchant_id": "M-RIDEHAIL-0001", "amount_minor": 5_000}
    preview = api.post(PATH, body, "k-2").json()
    assert [(line["rule_id"], line["points"]) for line in preview["lines"]] == [
        ("base-everyday", 50), ("cobrand-ridehail", 50)]


def test_preview_changes_nothing_in_the_ledger(api: Api) -> None:
    """Rule state, entries, balances, records: identical before and after previews."""
    api.earn([api.feed.purchase("p1", "alice", 1_000),
              api.feed.check_in("c1", "alice", NOW - timedelta(hours=1))])
    before = api.ledger_snapshot()
    for i in range(3):
        assert api.post(PATH, {**DINING, "amount_minor": 1000 + i}, f"k-{i}").status_code == 200
    assert api.ledger_snapshot() == before


def test_the_same_key_and_body_replay_the_first_response(api: Api) -> None:
    """A retried POST gets the stored response, marked as replayed, even after the state
    changed (the first answer stands)."""
    first = api.post(PATH, DINING, "retry-me")
    api.earn([api.feed.purchase("p1", "alice", 1_000)])  # the bonus is gone now
    again = api.post(PATH, DINING, "retry-me")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    fresh = api.post(PATH, DINING, "new-key")
    assert fresh.json()["points"] == 177


def test_the_same_key_with_another_body_is_refused(api: Api) -> None:
    """Key reuse for a different request is a 422 problem with a stable code; the stored
    response is untouched."""
    first = api.post(PATH, DINING, "k-reuse")
    refused = api.post(PATH, {**DINING, "amount_minor": 1}, "k-reuse")
    assert_problem(refused, 422, "idempotency_key_reused")
    assert api.post(PATH, DINING, "k-reuse").json() == first.json()


def test_keys_are_scoped_per_customer(api: Api) -> None:
    """Bob using Alice's key gets his own answer, not hers."""
    api.earn([api.feed.purchase("p1", "alice", 1_000)])
    alice = api.post(PATH, DINING, "shared-key", sub="alice").json()
    bob = api.post(PATH, DINING, "shared-key", sub="bob").json()
    assert (alice["points"], bob["points"]) == (177, 277)


def test_a_post_without_an_idempotency_key_is_refused(api: Api) -> None:
    """Missing → 400 idempotency_key_required; malformed → 422 validation problem."""
    assert_problem(api.post(PATH, DINING, None), 400, "idempotency_key_required")
    assert_problem(api.post(PATH, DINING, "x" * 129), 422, "validation_error")
    assert_problem(api.post(PATH, DINING, "has space"), 422, "validation_error")


@pytest.mark.parametrize("change", [
    {"amount_minor": 0}, {"amount_minor": -5}, {"amount_minor": 1.5},
    {"amount_minor": "100"}, {"currency": "cny"}, {"mcc": "12"}, {"channel": "fax"},
    {"merchant_id": ""}, {"partner_id": "Bad Partner"}, {"unexpected": 1},
])
def test_invalid_bodies_are_validation_problems(api: Api, change: dict[str, object]) -> None:
    """Bad fields come back as a 422 problem listing where, never echoing the input."""
    body = assert_problem(api.post(PATH, {**DINING, **change}, "k-bad"), 422,
                          "validation_error")
    assert body["errors"] and all("loc" in e and "msg" in e for e in body["errors"])


def test_a_body_that_is_not_json_is_a_400_problem(api: Api) -> None:
    """Broken JSON is a 400 invalid_json problem (docs/api.md, "400 or 422?"), not a server
    error."""
    response = api.client.post(
        PATH, content=b"{not json", headers={**_auth(), "Idempotency-Key": "k",
                                             "Content-Type": "application/json"})
    assert_problem(response, 400, "invalid_json")


def _auth() -> dict[str, str]:
    from .conftest import bearer

    return bearer("alice")
