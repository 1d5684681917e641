"""Referrals as operations and customers see them: one record per referral, with its state and,
when refused or clawed back, the reason code (docs/partners.md section 6).

A referral row exists for every onboarding whose code names someone (signed up, or refused by
a guard). An onboarding whose code names no one (``unknown_code``, ``invalid_code``) has no
referral, only its recorded refusal; it is listed here too, with no ``referral_id``, so a
customer's or an operator's list shows every onboarding that carried a code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select

from points import referrals as rl
from points.exchange.referral_records import REFUSAL_SUBJECT, referral_from_row
from points.exchange.store import aware
from points.exchange.tables import referrals
from points.refusals import refusals

__all__ = [
    "CODE_REFUSALS",
    "ReferralRecord",
    "customer_referrals",
    "find_referral",
    "list_referrals",
]

#: Refusals that leave no referral row: the code named no customer or partner.
CODE_REFUSALS = (str(rl.RefusalReason.UNKNOWN_CODE), str(rl.RefusalReason.INVALID_CODE))


@dataclass(frozen=True, slots=True)
class ReferralRecord:
    """One referral (or one code refusal, ``referral_id`` None) with its outcome."""

    referral_id: str | None
    origin: str | None
    state: str
    reason_code: str | None
    detail: str
    referrer_kind: str | None
    referrer_id: str | None
    referee_id: str | None
    code: str | None
    partner_id: str | None
    at: datetime
    signed_up_at: datetime | None = None
    qualify_by: datetime | None = None
    qualifying_event_id: str | None = None
    qualified_at: datetime | None = None
    event_id: str | None = None
    rewards: tuple[rl.Reward, ...] = ()

    @property
    def customer_reason(self) -> str | None:
        """What the customer is told: a fixed text per code, no other customer's data."""
        return None if self.reason_code is None else rl.REFUSAL_TEXT.get(self.reason_code)

    def points_to(self, customer_id: str) -> int:
        """Points this referral rewarded ``customer_id`` (taken back when clawed back)."""
        return sum(r.points for r in self.rewards if r.beneficiary.id == customer_id
                   and r.beneficiary.kind == "customer")

    def to_json(self) -> dict[str, Any]:
        return {
            "referral_id": self.referral_id,
            "origin": self.origin,
            "state": self.state,
            "reason_code": self.reason_code,
            "reason": self.detail,
            "referrer": (None if self.referrer_id is None
                         else {"kind": self.referrer_kind, "id": self.referrer_id}),
            "referee_id": self.referee_id,
            "code": self.code,
            "partner_id": self.partner_id,
            "at": self.at,
            "signed_up_at": self.signed_up_at,
            "qualify_by": self.qualify_by,
            "qualifying_event_id": self.qualifying_event_id,
            "qualified_at": self.qualified_at,
            "event_id": self.event_id,
            "rewards": [
                {"key": r.idempotency_key, "role": r.role,
                 "beneficiary": {"kind": r.beneficiary.kind, "id": r.beneficiary.id},
                 "points": r.points, "amount_minor": r.amount_minor}
                for r in self.rewards
            ],
        }


def _of_row(row: Any) -> ReferralRecord:
    referral = referral_from_row(row)
    code = rl.reason_code_of(referral)
    detail = referral.reason.partition(":")[2].strip() if code else referral.reason
    return ReferralRecord(
        referral_id=referral.referral_id, origin=str(referral.origin),
        state=str(referral.status), reason_code=code, detail=detail,
        referrer_kind=referral.referrer.kind, referrer_id=referral.referrer.id,
        referee_id=referral.referee.id if referral.referee else None, code=referral.code,
        partner_id=referral.partner_id, at=referral.updated_at or referral.invited_at,
        signed_up_at=referral.signed_up_at, qualify_by=referral.qualify_by,
        qualifying_event_id=referral.qualifying_event_id, qualified_at=referral.qualified_at,
        rewards=referral.rewards,
    )


def _of_refusal(row: Any) -> ReferralRecord:
    return ReferralRecord(
        referral_id=None, origin=None, state=str(rl.ReferralStatus.REFUSED),
        reason_code=str(row["reason_code"]), detail=str(row["reason"]), referrer_kind=None,
        referrer_id=None, referee_id=row["customer_id"], code=None, partner_id=None,
        at=aware(row["at"]), event_id=row["event_id"],
    )


def list_referrals(
    conn: Connection,
    *,
    customer: str | None = None,
    state: str | None = None,
    reason: str | None = None,
    limit: int = 100,
) -> list[ReferralRecord]:
    """Referrals (and code refusals), newest first; ``customer`` matches the customer as
    referrer or referee; ``reason`` a reason code (``unknown_code``, ``referral_ring``...)."""
    query = select(referrals)
    if customer is not None:
        query = query.where(or_(
            (referrals.c.referrer_kind == "customer") & (referrals.c.referrer_id == customer),
            referrals.c.referee_id == customer,
        ))
    if state is not None:
        query = query.where(referrals.c.status == state)
    if reason is not None:
        query = query.where(or_(referrals.c.reason == reason,
                                referrals.c.reason.like(f"{reason}:%")))
    rows = conn.execute(
        query.order_by(referrals.c.updated_at.desc(), referrals.c.referral_id).limit(limit)
    ).mappings()
    found = [_of_row(r) for r in rows]
    if reason in (None, *CODE_REFUSALS) and state in (None, str(rl.ReferralStatus.REFUSED)):
        found.extend(_code_refusals(conn, customer=customer, reason=reason, limit=limit))
        found.sort(key=lambda r: r.at, reverse=True)
    return found[:limit]


def _code_refusals(
    conn: Connection, *, customer: str | None, reason: str | None, limit: int
) -> list[ReferralRecord]:
    query = select(refusals).where(
        refusals.c.subject == REFUSAL_SUBJECT,
        refusals.c.reason_code.in_([reason] if reason else list(CODE_REFUSALS)),
    )
    if customer is not None:
        query = query.where(refusals.c.customer_id == customer)
    rows = conn.execute(query.order_by(refusals.c.at.desc()).limit(limit)).mappings()
    return [_of_refusal(r) for r in rows]


def find_referral(conn: Connection, referral_id: str) -> ReferralRecord | None:
    """One referral by id, or None."""
    row = conn.execute(
        select(referrals).where(referrals.c.referral_id == referral_id)
    ).mappings().first()
    return None if row is None else _of_row(row)


def customer_referrals(
    conn: Connection, customer_id: str, *, limit: int = 100
) -> tuple[list[ReferralRecord], ReferralRecord | None]:
    """What the customer sees: the referrals made with their code (newest first, at most
    ``limit``), and their own referral as referee (the one that counts, else the latest
    refused one or code refusal), or None."""
    made = [
        _of_row(r) for r in conn.execute(
            select(referrals)
            .where(referrals.c.referrer_kind == "customer",
                   referrals.c.referrer_id == customer_id)
            .order_by(referrals.c.updated_at.desc(), referrals.c.referral_id)
            .limit(limit)
        ).mappings()
    ]
    own = [
        _of_row(r) for r in conn.execute(
            select(referrals).where(referrals.c.referee_id == customer_id)
            .order_by(referrals.c.updated_at.desc(), referrals.c.referral_id).limit(10)
        ).mappings()
    ]
    own.extend(_code_refusals(conn, customer=customer_id, reason=None, limit=10))
    counting = [r for r in own if r.state != str(rl.ReferralStatus.REFUSED)]
    if counting:
        return made, counting[0]
    own.sort(key=lambda r: r.at, reverse=True)
    return made, own[0] if own else None
