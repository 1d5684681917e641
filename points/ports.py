"""Ports: what the domain needs from the outside world, as Protocols and plain messages.

``PartnerProgram`` is the one interface every partner adapter (``adapters/``) implements: quote
a swap, build the requests we send (swap, cancellation, member link, referral offer) and
interpret what the partner sends back. Adapters build :class:`OutboundMessage` bytes (the
services write them to the outbox, the relay publishes them) and turn raw inbound records into
domain inputs (:mod:`points.swap_saga` inputs, inbound credits, link results, referral sign-ups) or
a :class:`Refused` with a stable reason code for ``points.dlq``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

from points.swap_saga import InboundCredit, Swap, SwapInput

if TYPE_CHECKING:
    from points.partners import InboundQuote, PartnerConfig, Quote

__all__ = [
    "Accepted",
    "Clock",
    "DomainInput",
    "Headers",
    "InboundMessage",
    "MemberLinkRequest",
    "MemberLinkResult",
    "OutboundMessage",
    "PartnerDirectory",
    "PartnerProgram",
    "PartnerPurchaseNotice",
    "ReferralOffer",
    "ReferralSignupNotice",
    "Refused",
]

Headers: TypeAlias = tuple[tuple[str, bytes], ...]


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A record to publish: the relay sends exactly these bytes and headers."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A record as consumed from a partner's events topic."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    partition: int = 0
    offset: int = 0


@dataclass(frozen=True, slots=True)
class MemberLinkRequest:
    """Ask the partner to confirm that ``partner_member_id`` is our customer.

    ``member_name`` is required by partners that match names (airlines); ``referral_id`` marks
    a bank-originated cross-referral (the customer joined the program from the app).
    """

    request_id: str
    customer_id: str
    partner_member_id: str
    member_name: str | None = None
    referral_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReferralOffer:
    """Ask the partner to show its members our account offer with a referral code."""

    offer_id: str
    customer_id: str
    """Whose code is offered (a customer's, or the partner campaign's pseudo-customer)."""
    referral_code: str
    campaign: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class MemberLinkResult:
    customer_id: str
    partner_id: str
    partner_member_id: str
    linked: bool
    request_id: str | None
    reason_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReferralSignupNotice:
    """A partner's member opened a bank account with a referral code (partner-originated)."""

    customer_id: str
    partner_id: str
    partner_member_id: str
    referral_code: str
    event_id: str


@dataclass(frozen=True, slots=True)
class PartnerPurchaseNotice:
    """A linked member bought at the partner: earning (rules) and referral qualification."""

    event_id: str
    customer_id: str
    partner_id: str
    amount_minor: int
    currency: str
    at: datetime


DomainInput: TypeAlias = (
    SwapInput | InboundCredit | MemberLinkResult | ReferralSignupNotice | PartnerPurchaseNotice
)


@dataclass(frozen=True, slots=True)
class Accepted:
    """An authentic, well-formed partner message and what it means to the domain."""

    event_id: str
    event_type: str
    customer_id: str
    key_id: str
    domain: DomainInput
    event: object
    """The decoded wire contract (a pydantic model from points.events or adapters.contracts)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """Not acted on; goes to ``points.dlq`` with this reason code and the original bytes."""

    reason_code: str
    detail: str
    stage: Literal["signature", "decode", "contract", "semantics"]


class PartnerProgram(Protocol):
    """One partner program behind one small interface."""

    @property
    def partner_id(self) -> str: ...

    @property
    def config(self) -> PartnerConfig: ...

    def quote(self, points: int, now: datetime, *, customer_id: str = "") -> Quote: ...

    def inbound_quote(self, partner_units: int) -> InboundQuote: ...

    def swap_request(self, swap: Swap, now: datetime) -> OutboundMessage: ...

    def swap_cancellation(self, swap: Swap, now: datetime) -> OutboundMessage: ...

    def member_link_request(self, request: MemberLinkRequest, now: datetime) -> OutboundMessage: ...

    def referral_offer(self, offer: ReferralOffer, now: datetime) -> OutboundMessage: ...

    def referral_reward(
        self, *, reward_id: str, customer_id: str, points: int, referral_id: str, now: datetime
    ) -> OutboundMessage: ...

    def interpret(self, message: InboundMessage, now: datetime) -> Accepted | Refused: ...


class PartnerDirectory(Protocol):
    """Every configured partner program, and which one owns an events topic
    (``adapters.registry.PartnerRegistry`` implements it)."""

    def get(self, partner_id: str) -> PartnerProgram: ...

    def for_events_topic(self, topic: str) -> PartnerProgram: ...

    def events_topics(self) -> list[str]: ...

    def __iter__(self) -> Iterator[str]: ...
