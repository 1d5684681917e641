"""Wire contracts (v1) of the messages the bank sends on ``partner.<partner_id>.requests``.

Same conventions as :mod:`points.events`: pydantic v2, frozen, unknown fields forbidden,
``event_type`` as discriminator, integer points, aware times, keyed by ``customer_id``, signed
with the partner's shared key (headers, see :mod:`points.signing`).

``MemberLinkRejected`` is a *partner event* that ``points.events`` does not define yet (a partner
refusing a member link, e.g. on a name mismatch). It lives here until the contracts owner adds
it there; :data:`partner_reply_adapter` decodes the published partner events plus this one.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from points.events import (
    Contract,
    CustomerId,
    EventId,
    InboundSwap,
    MemberLinked,
    PartnerId,
    PartnerPurchase,
    Points,
    ReasonText,
    Reference,
    ReferralSignup,
    SwapConfirmed,
    SwapRejected,
)

__all__ = [
    "MemberLinkRejected",
    "MemberLinkRequested",
    "PartnerReply",
    "PartnerRequest",
    "ReferralOffered",
    "ReferralRewarded",
    "SwapCancelled",
    "SwapRequested",
    "name_digest",
    "partner_reply_adapter",
    "partner_request_adapter",
]

RateVersion = Annotated[str, Field(min_length=1, max_length=64)]
ReferralCode = Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Z0-9]+$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Request(Contract):
    event_id: EventId
    customer_id: CustomerId
    partner_id: PartnerId
    occurred_at: AwareDatetime


class SwapRequested(_Request):
    """Credit ``partner_points`` to the member; we hold ``points`` until ``deadline_at``."""

    event_type: Literal["swap_requested"]
    swap_id: EventId
    partner_member_id: Reference
    points: Points
    partner_points: Points
    quote_id: EventId
    rate_version: RateVersion
    deadline_at: AwareDatetime


class SwapCancelled(_Request):
    """We gave up on a swap (deadline passed) and returned the points: do not credit, or
    reverse a credit made after the deadline."""

    event_type: Literal["swap_cancelled"]
    swap_id: EventId
    reason_code: Literal["deadline_passed"]
    reason: ReasonText


class MemberLinkRequested(_Request):
    """Confirm that ``partner_member_id`` is our customer (answer: member_linked or
    member_link_rejected). ``member_name_sha256`` lets name-matching partners compare without
    the name itself travelling: SHA-256 of the NFKC, upper-cased name without spaces."""

    event_type: Literal["member_link_requested"]
    partner_member_id: Reference
    member_name_sha256: Sha256Hex | None = None
    referral_id: EventId | None = None


class ReferralOffered(_Request):
    """Show your members our account offer with this referral code until ``expires_at``."""

    event_type: Literal["referral_offered"]
    referral_code: ReferralCode
    campaign: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    expires_at: AwareDatetime


class ReferralRewarded(_Request):
    """Credit ``points`` of your program to the member (the partner-side reward of a
    cross-referral: our customer joined your program from our app and qualified). The bank
    pays for it at the contract price in the period's settlement. ``event_id`` is stable per
    reward: deduplicate on it."""

    event_type: Literal["referral_rewarded"]
    referral_id: EventId
    points: Points


_RequestUnion = (
    SwapRequested | SwapCancelled | MemberLinkRequested | ReferralOffered | ReferralRewarded
)
PartnerRequest = Annotated[_RequestUnion, Field(discriminator="event_type")]
partner_request_adapter: TypeAdapter[_RequestUnion] = TypeAdapter(PartnerRequest)


class MemberLinkRejected(Contract):
    """The partner refused to link: no such member, or the name does not match."""

    event_type: Literal["member_link_rejected"]
    event_id: EventId
    customer_id: CustomerId
    partner_id: PartnerId
    occurred_at: AwareDatetime
    partner_member_id: Reference
    link_request_id: EventId
    reason_code: Literal["member_not_found", "name_mismatch", "other"]
    reason: ReasonText


_ReplyUnion = (
    PartnerPurchase
    | MemberLinked
    | MemberLinkRejected
    | SwapConfirmed
    | SwapRejected
    | InboundSwap
    | ReferralSignup
)
PartnerReply = Annotated[_ReplyUnion, Field(discriminator="event_type")]
partner_reply_adapter: TypeAdapter[_ReplyUnion] = TypeAdapter(PartnerReply)


def name_digest(name: str) -> str:
    """SHA-256 hex of a person's name, normalised so both sides compute the same digest."""
    normal = unicodedata.normalize("NFKC", name).upper()
    return hashlib.sha256("".join(normal.split()).encode()).hexdigest()
