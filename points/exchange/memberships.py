"""One bank customer per partner membership.

Partner member ids are short and guessable, so a customer could ask to link someone else's
membership and, once the partner confirmed the id exists, swap points into it. The bank
therefore lets a membership (partner id + member id) belong to at most one customer at a time:

- a link that is ``requested`` or ``linked`` holds the membership; the partial unique index
  ``uq_partner_links_membership`` (migration 0011) enforces it, so two concurrent requests
  cannot both win;
- a ``rejected`` link holds nothing: a customer who typed (or guessed) a member id the partner
  refused never blocks the membership's real owner;
- a second customer asking for a held membership is refused (:class:`MembershipAlreadyLinked`,
  HTTP 409 ``membership_already_linked``) and the refusal is recorded in ``refusals`` (subject
  ``member_link``) so operations can list it; the other customer's id is never told.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from points.errors import PointsError
from points.exchange.store import bounded_id
from points.exchange.tables import partner_links
from points.refusals import Refusal, record_refusals

__all__ = [
    "HOLDING_STATES",
    "MembershipAlreadyLinked",
    "refuse_taken_membership",
]

#: partner_links.status values that hold a membership for their customer.
HOLDING_STATES = ("requested", "linked")

REASON_CODE = "membership_already_linked"
_REASON = (
    "partner membership {partner}/{member} is already linked to another bank customer; "
    "if it is yours, contact the bank"
)


class MembershipAlreadyLinked(PointsError):
    """The membership is pending or linked for another customer."""

    code = REASON_CODE


def refuse_taken_membership(
    conn: Connection, customer_id: str, partner_id: str, partner_member_id: str, now: datetime
) -> MembershipAlreadyLinked | None:
    """When another customer holds the membership: record the refusal (once per customer and
    membership, however often they ask) in ``conn``'s transaction and return the error to
    raise after it commits; else None."""
    holder = conn.execute(
        select(partner_links.c.customer_id).where(
            partner_links.c.partner_id == partner_id,
            partner_links.c.partner_member_id == partner_member_id,
            partner_links.c.status.in_(HOLDING_STATES),
            partner_links.c.customer_id != customer_id,
        ).limit(1)
    ).first()
    if holder is None:
        return None
    reason = _REASON.format(partner=partner_id, member=partner_member_id)
    record_refusals(conn, [Refusal(
        dedupe_key=bounded_id("link", customer_id, partner_id, partner_member_id, limit=200),
        source="partners",
        subject="member_link",
        subject_id=bounded_id(partner_id, partner_member_id, limit=128),
        customer_id=customer_id,
        reason_code=REASON_CODE,
        reason=reason,
        at=now,
    )])
    return MembershipAlreadyLinked(reason)
