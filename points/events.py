"""Wire contracts (v1) for the topics the exchange consumes, as pydantic v2 models.

Every model is frozen and forbids unknown fields, so a producer's typo is rejected with a
reason instead of silently ignored. Money is integer minor units, points are integers; times
must carry a zone. Each message names its ``event_type`` (the discriminator, unique across all
topics so a recorded file of mixed messages decodes unambiguously) and its ``schema_version``.

Topics and their adapters (decode raw bytes with ``<adapter>.validate_json(value)``):

- ``bank.transactions`` -> ``bank_transaction_adapter``: purchase, refund, reversal
- ``bank.customers`` (compacted) -> ``bank_customer_adapter``: customer_profile,
  customer_onboarded
- ``customer.activity`` -> ``customer_activity_adapter``: check_in, share, challenge_opt_in
- ``partner.<partner_id>.events`` -> ``partner_event_adapter``: partner_purchase,
  member_linked, swap_confirmed, swap_rejected, inbound_swap, referral_signup

Every message is customer-scoped and keyed by its ``customer_id`` (:func:`message_key`), so one
customer's events stay in order on one partition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

__all__ = [
    "SCHEMA_VERSION",
    "AnyEvent",
    "BankCustomerEvent",
    "BankTransaction",
    "ChallengeOptIn",
    "CheckIn",
    "Contract",
    "CustomerActivity",
    "CustomerOnboarded",
    "CustomerProfile",
    "InboundSwap",
    "MemberLinked",
    "PartnerEvent",
    "PartnerIdMismatch",
    "PartnerPurchase",
    "Purchase",
    "ReferralSignup",
    "Refund",
    "Reversal",
    "Share",
    "SwapConfirmed",
    "SwapRejected",
    "any_event_adapter",
    "bank_customer_adapter",
    "bank_transaction_adapter",
    "check_partner_topic",
    "customer_activity_adapter",
    "message_key",
    "occurred_at_utc",
    "partner_event_adapter",
]

SCHEMA_VERSION: Final = 1

_ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
EventId = Annotated[str, Field(min_length=1, max_length=64, pattern=_ID_PATTERN)]
CustomerId = Annotated[str, Field(min_length=1, max_length=64, pattern=_ID_PATTERN)]
PartnerId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
Reference = Annotated[str, Field(min_length=1, max_length=128, pattern=_ID_PATTERN)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Mcc = Annotated[str, Field(pattern=r"^[0-9]{4}$")]
AmountMinor = Annotated[int, Field(gt=0, le=10**12, strict=True)]
Points = Annotated[int, Field(gt=0, le=10**12, strict=True)]
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
ReasonText = Annotated[str, Field(min_length=1, max_length=500)]


class Contract(BaseModel):
    """Base of every wire message: frozen, closed to unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    schema_version: Literal[1] = 1


class _CustomerEvent(Contract):
    event_id: EventId
    customer_id: CustomerId
    occurred_at: AwareDatetime


# --------------------------------------------------------------------------- bank.transactions


class _TransactionBase(_CustomerEvent):
    amount_minor: AmountMinor
    currency: Currency
    mcc: Mcc
    merchant_id: Annotated[str, Field(min_length=1, max_length=64)]
    channel: Literal["card_present", "online", "mobile", "atm", "transfer"]


class Purchase(_TransactionBase):
    """A settled card or account payment by the customer."""

    event_type: Literal["purchase"]
    partner_id: Annotated[
        PartnerId | None,
        Field(description="Set by core banking when the merchant belongs to a partner program."),
    ] = None


class Refund(_TransactionBase):
    """A (possibly partial) refund of an earlier purchase."""

    event_type: Literal["refund"]
    original_event_id: EventId

    @model_validator(mode="after")
    def _not_self(self) -> Refund:
        if self.original_event_id == self.event_id:
            raise ValueError("original_event_id must name a different event")
        return self


class Reversal(_TransactionBase):
    """The card network reversed the original authorisation in full."""

    event_type: Literal["reversal"]
    original_event_id: EventId

    @model_validator(mode="after")
    def _not_self(self) -> Reversal:
        if self.original_event_id == self.event_id:
            raise ValueError("original_event_id must name a different event")
        return self


BankTransaction = Annotated[Purchase | Refund | Reversal, Field(discriminator="event_type")]
bank_transaction_adapter: TypeAdapter[Purchase | Refund | Reversal] = TypeAdapter(BankTransaction)

# ----------------------------------------------------------------------------- bank.customers

Segment = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="The bank's customer segment, e.g. long_tail, mass, affluent, private.",
    ),
]
CustomerStatus = Literal["active", "dormant", "frozen", "closed"]
IdentityHash = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{64}$",
        description=(
            "The person behind the customer id, as a keyed hash core banking computes: "
            "lowercase hex of HMAC-SHA256(key = the bank's identity key, message = UTF-8 of "
            "'<document type>:<document number>', the number upper-cased without spaces or "
            "hyphens), e.g. 'CN-RIC:11010519491231002X'. The same person has the same hash on "
            "every account; we never see the document or the key and only compare hashes "
            "(docs/partners.md section 6)."
        ),
    ),
]


class CustomerProfile(_CustomerEvent):
    """The customer's current profile. The topic is compacted: the latest one per key wins."""

    event_type: Literal["customer_profile"]
    segment: Segment
    joined_at: AwareDatetime
    birth_year: Annotated[int | None, Field(ge=1900, le=2100, strict=True)] = None
    status: CustomerStatus
    identity_hash: IdentityHash | None = None
    #: Whether the customer agreed to marketing messages (nudges on customer.nudges). Absent
    #: means not asked: treated as no (opt-in; docs/rules.md "Nudges"). Optional, so producers
    #: that do not send it stay valid.
    marketing_consent: Annotated[bool | None, Field(strict=True)] = None


class CustomerOnboarded(_CustomerEvent):
    """A new customer opened an account, possibly through someone's referral code.

    Consume it promptly: on the compacted topic a later profile for the same key replaces it.
    """

    event_type: Literal["customer_onboarded"]
    joined_at: AwareDatetime
    segment: Segment
    birth_year: Annotated[int | None, Field(ge=1900, le=2100, strict=True)] = None
    referral_code: Annotated[
        str | None, Field(min_length=4, max_length=32, pattern=r"^[A-Z0-9]+$")
    ] = None
    identity_hash: IdentityHash | None = None
    #: Whether the customer agreed to marketing messages (nudges on customer.nudges). Absent
    #: means not asked: treated as no (opt-in; docs/rules.md "Nudges"). Optional, so producers
    #: that do not send it stay valid.
    marketing_consent: Annotated[bool | None, Field(strict=True)] = None


BankCustomerEvent = Annotated[
    CustomerProfile | CustomerOnboarded, Field(discriminator="event_type")
]
bank_customer_adapter: TypeAdapter[CustomerProfile | CustomerOnboarded] = TypeAdapter(
    BankCustomerEvent
)

# -------------------------------------------------------------------------- customer.activity


class CheckIn(_CustomerEvent):
    """The customer checked in from the bank's app (one tap, once or more a day)."""

    event_type: Literal["check_in"]


class Share(_CustomerEvent):
    """The customer shared an offer or a badge to a social network from the app."""

    event_type: Literal["share"]
    network: Literal["wechat", "weibo", "qq", "douyin", "other"]
    content_id: Reference


class ChallengeOptIn(_CustomerEvent):
    """The customer joined a challenge (named by the rule id of the challenge rule)."""

    event_type: Literal["challenge_opt_in"]
    challenge_id: Slug


CustomerActivity = Annotated[CheckIn | Share | ChallengeOptIn, Field(discriminator="event_type")]
customer_activity_adapter: TypeAdapter[CheckIn | Share | ChallengeOptIn] = TypeAdapter(
    CustomerActivity
)

# -------------------------------------------------------------------- partner.<partner_id>.events


class _PartnerEvent(_CustomerEvent):
    partner_id: PartnerId


class PartnerPurchase(_PartnerEvent):
    """A linked member bought something at the partner (not necessarily with our card)."""

    event_type: Literal["partner_purchase"]
    partner_reference: Annotated[Reference, Field(description="The partner's order id.")]
    amount_minor: AmountMinor
    currency: Currency
    mcc: Mcc | None = None


class MemberLinked(_PartnerEvent):
    """The partner confirmed that its member and our customer are one person."""

    event_type: Literal["member_linked"]
    partner_member_id: Reference
    link_request_id: EventId | None = None


class SwapConfirmed(_PartnerEvent):
    """The partner credited its program for a swap we requested (our hold is then posted)."""

    event_type: Literal["swap_confirmed"]
    swap_id: EventId
    partner_reference: Reference
    points: Annotated[Points, Field(description="Bank points the swap moved (as requested).")]
    partner_points: Annotated[Points, Field(description="Points credited in the partner program.")]


class SwapRejected(_PartnerEvent):
    """The partner refused a swap we requested (our hold is then voided)."""

    event_type: Literal["swap_rejected"]
    swap_id: EventId
    reason_code: Literal[
        "member_not_found", "member_not_linked", "limit_exceeded", "invalid_request", "other"
    ]
    reason: ReasonText


class InboundSwap(_PartnerEvent):
    """A member moved partner points into bank points; we credit the wallet at the contract rate."""

    event_type: Literal["inbound_swap"]
    swap_id: EventId
    partner_reference: Reference
    partner_points: Annotated[Points, Field(description="Points debited in the partner program.")]
    quote_id: EventId | None = None


class ReferralSignup(_PartnerEvent):
    """A partner member opened a bank account through a referral offer."""

    event_type: Literal["referral_signup"]
    referral_code: Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Z0-9]+$")]
    partner_member_id: Reference


PartnerEvent = Annotated[
    PartnerPurchase | MemberLinked | SwapConfirmed | SwapRejected | InboundSwap | ReferralSignup,
    Field(discriminator="event_type"),
]
partner_event_adapter: TypeAdapter[
    PartnerPurchase | MemberLinked | SwapConfirmed | SwapRejected | InboundSwap | ReferralSignup
] = TypeAdapter(PartnerEvent)

# ---------------------------------------------------------------------------------- all of them

_AnyEventUnion = (
    Purchase
    | Refund
    | Reversal
    | CustomerProfile
    | CustomerOnboarded
    | CheckIn
    | Share
    | ChallengeOptIn
    | PartnerPurchase
    | MemberLinked
    | SwapConfirmed
    | SwapRejected
    | InboundSwap
    | ReferralSignup
)
AnyEvent = Annotated[_AnyEventUnion, Field(discriminator="event_type")]
#: Decodes a message from any topic (used for recorded event files, e.g. by the backtest).
any_event_adapter: TypeAdapter[_AnyEventUnion] = TypeAdapter(AnyEvent)


class PartnerIdMismatch(ValueError):
    """A partner event names a partner other than the one whose topic carried it."""


def message_key(event: _CustomerEvent) -> bytes:
    """The Kafka key of a customer-scoped message: its customer id, UTF-8."""
    return event.customer_id.encode()


def check_partner_topic(event: _PartnerEvent, topic: str) -> None:
    """Reject a partner event published on another partner's topic (a partner acts as itself)."""
    expected = f"partner.{event.partner_id}.events"
    if topic != expected:
        raise PartnerIdMismatch(
            f"event {event.event_id} names partner_id {event.partner_id!r} "
            f"but arrived on {topic!r} (expected {expected!r})"
        )


def occurred_at_utc(value: datetime) -> datetime:
    """Normalise an aware time to UTC for storage and comparisons."""
    return value.astimezone(UTC)
