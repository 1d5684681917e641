"""Partner link replies (issue 12, finding 7): ``member_linked`` without ``link_request_id``
decides the pending request of the same customer, partner and member id; every reply that
decides nothing is a recorded refusal with its reason, never silence."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from points.refusals import refusals
from tests.integration.exchange.support import Exchange, event

pytestmark = pytest.mark.integration


def refused(x: Exchange) -> list[tuple[str | None, str, str]]:
    with x.engine.connect() as conn:
        rows = conn.execute(select(refusals.c.customer_id, refusals.c.subject,
                                   refusals.c.reason_code).order_by(refusals.c.id)).tuples()
        return [(c, s, r) for c, s, r in rows]


def linked(x: Exchange, customer: str, event_id: str, member: str,
           request_id: str | None = None) -> dict[str, object]:
    extra = {"link_request_id": request_id} if request_id else {}
    return event("member_linked", customer, "ridehail", event_id, x.clock.now,
                 partner_member_id=member, **extra)


def test_member_linked_without_request_id_links_the_pending_request(exchange: Exchange) -> None:
    """The request is pending; the partner answers ``member_linked`` naming the same member but
    no ``link_request_id``: the link is ``linked`` and nothing is refused."""
    x = exchange
    x.service.request_link("ann", "ridehail", "M-ann")
    x.service.process([x.signed("ridehail", linked(x, "ann", "ml-1", "M-ann"))])
    view = x.service.link("ann", "ridehail")
    assert view is not None and view.status == "linked"
    assert refused(x) == []


def test_link_replies_that_decide_nothing_are_recorded_refusals(exchange: Exchange) -> None:
    """Each reply that matches no pending link ends in a ``member_link`` refusal, once per
    event, with the reason: no request at all, an unknown request id, another member id than
    requested (the link stays pending), a rejection of an unknown request, and a second
    confirmation of a link already decided (a re-send under a new event id)."""
    x = exchange
    x.service.request_link("bob", "ridehail", "M-bob")
    request_id = x.service.link("bob", "ridehail").request_id  # type: ignore[union-attr]
    rejection = event("member_link_rejected", "cat", "ridehail", "mr-1", x.clock.now,
                      partner_member_id="M-cat", link_request_id="link-unknown",
                      reason_code="member_not_found", reason="no such member")
    replies = [
        linked(x, "nobody", "ml-1", "M-x"),
        linked(x, "bob", "ml-2", "M-bob", request_id="link-other"),
        linked(x, "bob", "ml-3", "M-someone-else"),
        rejection,
    ]
    x.service.process([x.signed("ridehail", r) for r in replies])
    x.service.process([x.signed("ridehail", r) for r in replies])  # re-delivered: recorded once
    assert x.service.link("bob", "ridehail").status == "requested"  # type: ignore[union-attr]
    x.service.process([x.signed("ridehail", linked(x, "bob", "ml-4", "M-bob", request_id))])
    x.service.process([x.signed("ridehail", linked(x, "bob", "ml-5", "M-bob", request_id))])
    assert x.service.link("bob", "ridehail").status == "linked"  # type: ignore[union-attr]
    assert refused(x) == [
        ("nobody", "member_link", "link_not_requested"),
        ("bob", "member_link", "link_request_unknown"),
        ("bob", "member_link", "member_id_mismatch"),
        ("cat", "member_link", "link_not_requested"),
        ("bob", "member_link", "link_already_decided"),
    ]
