"""What the referral desk reads and writes: codes, its inputs, the work it collects, rows.

Split from points/exchange/referral_desk.py (the guards, qualification, rewards and clawbacks)
so that each reads on its own: here are the referral codes (:func:`ensure_code`), the facts a
batch hands the desk (:class:`CustomerSeen`, :class:`Purchase`, :class:`Refund`), the
:class:`Work` it collects for the caller's transaction and writes with :func:`write_work`, and
the ``referrals`` row round trip.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from points import referrals as rl
from points.exchange.store import aware, bounded_id, insert_ignore, upsert
from points.exchange.tables import partner_fees, referral_codes, referrals
from points.ledger.model import Clawback, Earn
from points.refusals import Refusal, record_refusals

__all__ = [
    "REFUSAL_SOURCE",
    "REFUSAL_SUBJECT",
    "CustomerSeen",
    "Purchase",
    "Refund",
    "Work",
    "ensure_code",
    "new_referral_id",
    "referral_from_row",
    "referral_refusal",
    "referral_to_row",
    "write_work",
]

MAX_CODE_ATTEMPTS = 20
#: refusals.source / subject of a referral refusal (docs/partners.md section 6).
REFUSAL_SOURCE = "referrals"
REFUSAL_SUBJECT = "referral"


def ensure_code(
    conn: Connection, secret: bytes, owner_kind: str, owner_id: str, now: datetime
) -> str:
    """The owner's one referral code: the stored one, else minted and stored now.

    Whoever shows a code first (``GET /v1/me/referral``, :meth:`ExchangeService.referral_code`)
    stores it with an insert that ignores conflicts, so what a customer is shown is exactly
    what onboarding resolves, and it never changes afterwards. The code is
    ``referral_code(owner, secret, attempt)`` with the first attempt whose code is free; two
    concurrent first calls for one owner insert the same code and both read it back.
    """
    material = owner_id if owner_kind == "customer" else f"{owner_kind}:{owner_id}"
    for attempt in range(MAX_CODE_ATTEMPTS):
        found = _stored_code(conn, owner_kind, owner_id)
        if found is not None:
            return found
        code = rl.referral_code(material, secret, attempt=attempt)
        insert_ignore(
            conn,
            referral_codes,
            [{"code": code, "owner_kind": owner_kind, "owner_id": owner_id, "created_at": now}],
        )
    found = _stored_code(conn, owner_kind, owner_id)
    if found is None:
        raise RuntimeError(f"no free referral code for {owner_kind} {owner_id}")
    return found


def _stored_code(conn: Connection, owner_kind: str, owner_id: str) -> str | None:
    found = conn.execute(
        select(referral_codes.c.code).where(
            referral_codes.c.owner_kind == owner_kind, referral_codes.c.owner_id == owner_id
        )
    ).scalar_one_or_none()
    return None if found is None else str(found)


def referral_refusal(
    *,
    dedupe_id: str,
    reason_code: str,
    reason: str,
    at: datetime,
    subject_id: str | None,
    event_id: str | None,
    customer_id: str | None,
) -> Refusal:
    """A referral refusal as docs/partners.md section 6 records it: dedupe
    ``referral:<referral_id or event_id>``, source ``referrals``, subject ``referral``."""
    return Refusal(
        dedupe_key=f"referral:{dedupe_id}", source=REFUSAL_SOURCE, subject=REFUSAL_SUBJECT,
        reason_code=reason_code, reason=reason[:2000], at=at, subject_id=subject_id,
        event_id=event_id, customer_id=customer_id,
    )


@dataclass(frozen=True, slots=True)
class CustomerSeen:
    """One bank message's evidence that a customer id exists (see ``known_customers``)."""

    customer_id: str
    known_since: datetime
    evidence: str
    identity_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Purchase:
    """A referee's transaction that may qualify a referral (bank card or partner purchase)."""

    event_id: str
    customer_id: str
    amount_minor: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Refund:
    event_id: str
    original_event_id: str
    at: datetime


@dataclass(slots=True)
class Work:
    """What a batch's referral steps will write (in the caller's transaction)."""

    operations: list[Earn | Clawback] = field(default_factory=list)
    op_customers: list[str] = field(default_factory=list)
    rows: dict[str, rl.Referral] = field(default_factory=dict)
    fees: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    refusals: list[Refusal] = field(default_factory=list)

    def refused(self, referral: rl.Referral, at: datetime, event_id: str | None) -> None:
        """Record that ``referral`` was refused (its reason is on the row as ``code: why``)."""
        code, _, detail = referral.reason.partition(":")
        self.refusals.append(referral_refusal(
            dedupe_id=referral.referral_id, reason_code=code, reason=detail.strip() or code,
            at=at, subject_id=referral.referral_id, event_id=event_id,
            customer_id=referral.referee.id if referral.referee is not None else None,
        ))


def referral_to_row(r: rl.Referral) -> dict[str, Any]:
    return {
        "referral_id": r.referral_id,
        "origin": str(r.origin),
        "referrer_kind": r.referrer.kind,
        "referrer_id": r.referrer.id,
        "referee_id": r.referee.id if r.referee else None,
        "code": r.code,
        "partner_id": r.partner_id,
        "status": str(r.status),
        "reason": r.reason[:500],
        "invited_at": r.invited_at,
        "signed_up_at": r.signed_up_at,
        "qualify_by": r.qualify_by,
        "qualifying_event_id": r.qualifying_event_id,
        "qualified_at": r.qualified_at,
        "rewards": [
            {
                "key": w.idempotency_key,
                "role": w.role,
                "kind": w.beneficiary.kind,
                "id": w.beneficiary.id,
                "points": w.points,
                "amount_minor": w.amount_minor,
            }
            for w in r.rewards
        ],
        "updated_at": r.updated_at or r.invited_at,
    }


def _opt(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def referral_from_row(row: Any) -> rl.Referral:
    rewards = row["rewards"]
    if isinstance(rewards, str):
        rewards = json.loads(rewards)
    referee = (
        rl.Party("customer", row["referee_id"]) if row["referee_id"] is not None else None
    )
    return rl.Referral(
        referral_id=row["referral_id"],
        origin=rl.Origin(row["origin"]),
        referrer=rl.Party(row["referrer_kind"], row["referrer_id"]),
        invited_at=aware(row["invited_at"]),
        code=row["code"],
        partner_id=row["partner_id"],
        status=rl.ReferralStatus(row["status"]),
        reason=row["reason"],
        referee=referee,
        signed_up_at=_opt(row["signed_up_at"]),
        qualify_by=_opt(row["qualify_by"]),
        qualifying_event_id=row["qualifying_event_id"],
        qualified_at=_opt(row["qualified_at"]),
        rewards=tuple(
            rl.Reward(
                w["key"], w["role"], rl.Party(w["kind"], w["id"]), w["points"], w["amount_minor"]
            )
            for w in rewards or ()
        ),
        updated_at=_opt(row["updated_at"]),
    )


def write_work(conn: Connection, work: Work) -> None:
    """Write what the desk collected (referral rows, partner fees, refusals) in the caller's
    transaction; its ledger operations and outbox rows are the caller's to write."""
    if work.rows:
        upsert(
            conn, referrals, [referral_to_row(r) for r in work.rows.values()],
            ["referral_id"],
        )
    insert_ignore(conn, partner_fees, work.fees)
    record_refusals(conn, work.refusals)


def new_referral_id(*parts: str) -> str:
    return bounded_id("ref", *parts)
