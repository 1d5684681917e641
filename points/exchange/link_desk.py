"""The links desk: a customer asks to link a partner membership; the partner's reply decides it.

A swap needs a linked membership (``partner_links.status = 'linked'``). The customer's request
goes to the partner as ``member_link_request`` (through the outbox); the partner answers on its
events topic with ``member_linked`` or ``member_link_rejected`` (docs/partners.md section 2.2),
which the partner events batch hands to :meth:`LinkDesk.decide`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from points import referrals as rl
from points.exchange.memberships import refuse_taken_membership
from points.exchange.referral_desk import ReferralDesk
from points.exchange.referral_records import Work
from points.exchange.store import bounded_id, member_link, outbox_row, set_link_status, upsert
from points.exchange.tables import partner_links
from points.outbox import enqueue
from points.ports import MemberLinkRequest, MemberLinkResult, PartnerDirectory
from points.refusals import Refusal, record_refusals

__all__ = ["LinkDesk", "LinkView"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LinkView:
    customer_id: str
    partner_id: str
    partner_member_id: str
    status: str
    request_id: str
    reason: str | None

    @staticmethod
    def of(row: Mapping[str, Any]) -> LinkView:
        return LinkView(
            row["customer_id"], row["partner_id"], row["partner_member_id"], row["status"],
            row["request_id"], row["reason"],
        )


class LinkDesk:
    """Member link requests and the partners' replies to them."""

    def __init__(
        self,
        engine: Engine,
        directory: PartnerDirectory,
        referrals: ReferralDesk,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._referrals = referrals
        self._clock = clock

    def request_link(
        self,
        customer_id: str,
        partner_id: str,
        partner_member_id: str,
        *,
        member_name: str | None = None,
        referral_id: str | None = None,
    ) -> LinkView:
        """Ask the partner to confirm the membership (swaps wait for ``member_linked``)."""
        now = self._clock()
        program = self._directory.get(partner_id)
        # One customer per membership (points.exchange.memberships): the refusal is committed,
        # then raised. A request racing past this check loses on the unique index instead.
        with self._engine.begin() as conn:
            taken = refuse_taken_membership(conn, customer_id, partner_id, partner_member_id, now)
        if taken is not None:
            raise taken
        with self._engine.begin() as conn:
            current = self._link(conn, customer_id, partner_id)
            if (
                current is not None
                and current.status in ("linked", "requested")
                and current.partner_member_id == partner_member_id
            ):
                return current
            request_id = bounded_id(
                "link", customer_id, partner_id, partner_member_id, str(int(now.timestamp() * 1e6))
            )
            message = program.member_link_request(
                MemberLinkRequest(
                    request_id, customer_id, partner_member_id, member_name, referral_id
                ),
                now,
            )
            row = {
                "customer_id": customer_id,
                "partner_id": partner_id,
                "partner_member_id": partner_member_id,
                "status": "requested",
                "request_id": request_id,
                "referral_id": referral_id,
                "reason": None,
                "updated_at": now,
            }
            upsert(conn, partner_links, [row], ["customer_id", "partner_id"])
            enqueue(conn, [outbox_row(message, request_id)])
        return LinkView(customer_id, partner_id, partner_member_id, "requested", request_id, None)

    def link(self, customer_id: str, partner_id: str) -> LinkView | None:
        with self._engine.connect() as conn:
            return self._link(conn, customer_id, partner_id)

    @staticmethod
    def _link(conn: Connection, customer_id: str, partner_id: str) -> LinkView | None:
        row = member_link(conn, customer_id, partner_id)
        return None if row is None else LinkView.of(row)

    def decide(
        self, conn: Connection, work: Work, result: MemberLinkResult, now: datetime,
        event_id: str = "",
    ) -> None:
        """A partner's ``member_linked`` / ``member_link_rejected`` decides the customer's
        pending link (docs/partners.md §2.2): the one whose request ``event_id`` the reply
        echoes in ``link_request_id``, or -- without it -- the pending request for the same
        customer, partner and ``partner_member_id``. A reply that decides nothing (no pending
        link, another request, another member id, already decided) is a recorded refusal with
        its reason, in this transaction; never silence."""
        row = member_link(conn, result.customer_id, result.partner_id, lock=True)
        unmatched = _link_reply_mismatch(row, result)
        if unmatched is not None:
            code, why = unmatched
            log.info("link reply %s for %s refused: %s", event_id, result.customer_id, code)
            record_refusals(conn, [Refusal(
                dedupe_key=f"link-reply:{result.partner_id}:{event_id}",
                source="partners", subject="member_link", reason_code=code, reason=why,
                at=now, subject_id=result.request_id, event_id=event_id,
                customer_id=result.customer_id,
            )])
            return
        assert row is not None
        status = "linked" if result.linked else "rejected"
        reason = None if result.linked else f"{result.reason_code}: {result.reason}"[:500]
        set_link_status(conn, result.customer_id, result.partner_id, status, reason, now)
        referral_id = row["referral_id"]
        if result.linked and referral_id:
            # bank-originated cross-referral: the customer joined the partner's program
            current = self._referrals.load(conn, [referral_id]).get(referral_id)
            if current is not None and current.status is rl.ReferralStatus.INVITED:
                self._referrals.sign_up(conn, work, current, result.customer_id, now)


def _link_reply_mismatch(
    row: Mapping[str, Any] | None, result: MemberLinkResult
) -> tuple[str, str] | None:
    """Why a partner's link reply decides nothing (reason code, reason), or None when it
    decides the pending link ``row``."""
    who = f"{result.customer_id} at {result.partner_id}"
    if row is None:
        return "link_not_requested", f"no member link was requested for {who}"
    if result.request_id is not None and row["request_id"] != result.request_id:
        return "link_request_unknown", (
            f"link_request_id {result.request_id!r} is not the pending request of {who} "
            f"({row['request_id']!r}, {row['status']})"
        )
    if row["partner_member_id"] != result.partner_member_id:
        return "member_id_mismatch", (
            f"the reply names member {result.partner_member_id!r}; the request for {who} "
            f"named {row['partner_member_id']!r}"
        )
    if row["status"] != "requested":
        return "link_already_decided", f"the link request of {who} is already {row['status']}"
    return None
