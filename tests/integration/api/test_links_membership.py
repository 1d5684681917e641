"""POST /v1/me/links (issue 12, finding 9): the API accepts exactly the member ids the partner
contract can carry, never answers 500 whatever the body, and lets one partner membership
belong to one bank customer at a time (409 ``membership_already_linked``, recorded in
``refusals``), while a link the partner rejected blocks nobody."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from points.events import MemberLinked
from points.exchange.tables import partner_links
from points.refusals import refusals

from .conftest import PARTNERS, Api, assert_problem, bearer

LINKS = "/v1/me/links"


def link(api: Api, customer: str, member: str, partner: str = "ridehail",
         key: str | None = None) -> Any:
    return api.post(LINKS, {"partner_id": partner, "partner_member_id": member},
                    key or f"link-{customer}-{partner}-{member}"[:128], customer)


def member_link_refusals(api: Api) -> list[dict[str, Any]]:
    with api.engine.connect() as conn:
        rows = conn.execute(select(refusals).where(refusals.c.subject == "member_link")
                            .order_by(refusals.c.id)).mappings().all()
    return [dict(r) for r in rows]


def set_status(api: Api, customer: str, status: str, reason: str | None = None) -> None:
    with api.engine.begin() as conn:
        conn.execute(update(partner_links).where(partner_links.c.customer_id == customer)
                     .values(status=status, reason=reason))


# ------------------------------------------------------------------------- what is accepted


@pytest.mark.parametrize("member", ["o>", "R 9", "R/9", "é", "R-9\n", "a" * 129, "<script>"])
def test_a_member_id_the_partner_contract_refuses_is_422_not_500(api: Api, member: str) -> None:
    """The issue's body ({"partner_member_id": "o>", "member_name": "."}) and its kin: 422
    validation_error naming the field, nothing stored, nothing for the partner."""
    response = api.post(LINKS, {"partner_id": "ridehail", "partner_member_id": member,
                                "member_name": "."}, f"bad-{member.encode().hex()[:100]}")
    body = assert_problem(response, 422, "validation_error")
    assert ["body", "partner_member_id"] in [e["loc"] for e in body["errors"]]
    assert api.outbox() == []
    assert api.get(LINKS).json() == {"items": []}


def test_the_api_accepts_every_member_id_the_partner_contract_accepts(api: Api) -> None:
    """The API's field is the contract's type (points.events.Reference): a member id at the
    contract's limits (every allowed character, 128 long) is sent, and the message in the
    outbox passes the partner's own reply model with it."""
    member = ("Az09_.:-" * 16)[:128]
    response = link(api, "alice", member)
    assert response.status_code == 202, response.text
    [row] = api.outbox("member_link_requested")
    assert row["body"]["partner_member_id"] == member
    MemberLinked.model_validate({
        "event_type": "member_linked", "event_id": "e-1", "customer_id": "alice",
        "partner_id": "ridehail", "partner_member_id": member,
        "occurred_at": "2026-11-27T12:00:00+00:00",
        "link_request_id": row["body"]["event_id"]})


def test_no_link_body_is_a_server_error(api: Api) -> None:
    """Property: any body (arbitrary JSON values, strings with any code point including lone
    surrogates, or bytes that are not JSON at all) answers 202, 400, 404, 409 or 422 as a
    problem or a link; never 5xx."""
    json_text = st.text(st.characters(codec=None), max_size=140)
    field = st.one_of(json_text, st.integers(), st.none(), st.booleans(),
                      st.lists(st.integers(), max_size=2), st.sampled_from(["R-1", "E-1", "."]))
    # Mostly near-valid: a known partner, a member id of visible ASCII (what the API used to
    # accept), a name for the airline; then anything at all.
    visible_ascii = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                            min_size=1, max_size=12)
    near_valid = st.fixed_dictionaries(
        {"partner_id": st.sampled_from(sorted(PARTNERS.partners)),
         "partner_member_id": visible_ascii, "member_name": json_text})
    bodies = st.one_of(
        near_valid, near_valid,
        st.fixed_dictionaries(
            {"partner_id": st.one_of(st.sampled_from(sorted(PARTNERS.partners)), field),
             "partner_member_id": field},
            optional={"member_name": field, "extra": field}),
        st.dictionaries(json_text, field, max_size=3),
        field,
    )
    counter = iter(range(10**6))
    seen: set[int] = set()

    @settings(max_examples=250, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(body=st.one_of(bodies.map(lambda b: json.dumps(b).encode()),
                          st.binary(max_size=60)))
    def explore(body: bytes) -> None:
        headers = {**bearer(f"fuzz-{next(counter) % 7}"), "Idempotency-Key": f"k{next(counter)}",
                   "Content-Type": "application/json"}
        response = api.client.post(LINKS, content=body, headers=headers)
        seen.add(response.status_code)
        assert response.status_code in {202, 400, 404, 409, 422}, (body, response.text)
        if response.status_code != 202:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"]

    explore()
    assert {202, 400, 422} <= seen, seen


# ------------------------------------------------------------------ one customer per membership


def test_a_second_customer_linking_a_held_membership_is_409_and_recorded(api: Api) -> None:
    """alice asked for R-7 (pending): bob asking for R-7 gets 409 membership_already_linked,
    never learns who holds it, nothing reaches the partner, and operations find the refusal
    (subject member_link, bob, the membership). Asking again records it once."""
    assert link(api, "alice", "R-7").status_code == 202
    refused = link(api, "bob", "R-7")
    body = assert_problem(refused, 409, "membership_already_linked")
    assert "alice" not in refused.text
    assert "ridehail/R-7" in body["detail"]
    assert api.get(LINKS, "bob").json() == {"items": []}
    assert len(api.outbox("member_link_requested")) == 1
    assert_problem(link(api, "bob", "R-7", key="again"), 409, "membership_already_linked")
    [row] = member_link_refusals(api)
    assert row["customer_id"] == "bob"
    assert row["reason_code"] == "membership_already_linked"
    assert row["subject_id"] == "ridehail:R-7"
    assert row["dedupe_key"] == "link:bob:ridehail:R-7"
    assert "already linked to another bank customer" in row["reason"]


def test_a_linked_membership_also_refuses_a_second_customer(api: Api) -> None:
    """Once the partner confirmed alice's link, bob is refused the same way; the same
    member id at another partner is another membership and is free."""
    api.link("alice", "ridehail", "R-1")
    assert_problem(link(api, "bob", "R-1"), 409, "membership_already_linked")
    assert link(api, "bob", "R-1", partner="eshop").status_code == 202


def test_a_link_the_partner_rejected_does_not_block_the_real_owner(api: Api) -> None:
    """mallory guessed R-5 and the partner rejected it: bob (the owner) links R-5; mallory's
    rejected link stays visible to her with the partner's reason, and asking again for R-5
    now is refused to her (bob holds it)."""
    assert link(api, "mallory", "R-5").status_code == 202
    set_status(api, "mallory", "rejected", "member_not_found: not this customer")
    owner = link(api, "bob", "R-5")
    assert owner.status_code == 202, owner.text
    assert owner.json()["status"] == "pending"
    [mine] = api.get(LINKS, "mallory").json()["items"]
    assert (mine["status"], mine["reason"]) == ("rejected", "member_not_found: not this customer")
    assert_problem(link(api, "mallory", "R-5", key="retry"), 409, "membership_already_linked")


def test_a_customer_moving_to_another_member_id_frees_the_first(api: Api) -> None:
    """alice replaces R-1 by R-2 (one link per partner): R-1 is free for bob."""
    assert link(api, "alice", "R-1").status_code == 202
    assert link(api, "alice", "R-2").status_code == 202
    assert link(api, "bob", "R-1").status_code == 202


def test_the_database_refuses_a_second_holder_even_without_the_api(api: Api) -> None:
    """The rule is the partial unique index, not the pre-check: a direct insert of a second
    pending link to a held membership fails; a rejected one is allowed."""
    from sqlalchemy.exc import IntegrityError

    api.link("alice", "ridehail", "R-3")
    row = {"customer_id": "bob", "partner_id": "ridehail", "partner_member_id": "R-3",
           "request_id": "direct-1", "referral_id": None, "reason": None,
           "updated_at": api.clock.now}
    with pytest.raises(IntegrityError), api.engine.begin() as conn:
        conn.execute(partner_links.insert().values(**row, status="requested"))
    with api.engine.begin() as conn:
        conn.execute(partner_links.insert().values(**row, status="rejected"))


def test_concurrent_requests_for_one_membership_link_exactly_one_customer(api: Api) -> None:
    """Eight customers ask for the same membership at once: exactly one 202, the others 409,
    one holding link in the table, and a refusal per loser."""
    customers = [f"c{i}" for i in range(8)]
    statuses: dict[str, int] = {}
    start = threading.Barrier(len(customers))

    def ask(customer: str) -> None:
        start.wait()
        statuses[customer] = link(api, customer, "R-RACE").status_code

    threads = [threading.Thread(target=ask, args=(c,)) for c in customers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses.values()) == [202] + [409] * 7, statuses
    with api.engine.connect() as conn:
        holders = conn.execute(select(func.count()).select_from(partner_links).where(
            partner_links.c.partner_member_id == "R-RACE")).scalar_one()
    assert holders == 1
    losers = {c for c, s in statuses.items() if s == 409}
    assert {r["customer_id"] for r in member_link_refusals(api)} == losers


def test_migration_0011_resolves_memberships_already_shared(migrated_url: str) -> None:
    """A ledger from before the rule, where R-1 is linked to alice (first) and bob, and
    requested by carol: after migration 0011 alice keeps it, bob's and carol's links are
    rejected with the reason, each has a recorded refusal, and the index is in place."""
    from datetime import UTC, datetime

    from sqlalchemy.exc import IntegrityError

    from points.db import make_engine
    from points.migrate import downgrade, upgrade

    downgrade(migrated_url, "0010")
    engine = make_engine(migrated_url)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [("bob", "linked", 2), ("alice", "linked", 1), ("carol", "requested", 0),
            ("dave", "rejected", 0)]
    try:
        with engine.begin() as conn:
            for customer, status, hours in rows:
                conn.execute(partner_links.insert().values(
                    customer_id=customer, partner_id="ridehail", partner_member_id="R-1",
                    status=status, request_id=f"req-{customer}", referral_id=None,
                    reason=None, updated_at=at.replace(hour=hours)))
        upgrade(migrated_url)
        with engine.connect() as conn:
            states: dict[str, str] = dict(conn.execute(select(partner_links.c.customer_id,
                                              partner_links.c.status)).tuples().all())
            found = conn.execute(select(refusals.c.customer_id, refusals.c.reason_code,
                                        refusals.c.subject)).all()
        assert states == {"alice": "linked", "bob": "rejected", "carol": "rejected",
                          "dave": "rejected"}
        assert sorted(found) == [("bob", "membership_already_linked", "member_link"),
                                 ("carol", "membership_already_linked", "member_link")]
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(update(partner_links).where(partner_links.c.customer_id == "bob")
                         .values(status="linked"))
    finally:
        engine.dispose()
