"""The configured partner program: one implementation of ``points.ports.PartnerProgram``.

Per-partner modules subclass it only where a partner really differs (how it words a rejection,
what a member link needs); a partner added to ``config/partners.yaml`` without a module of its
own uses this class as is.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, ValidationError

from adapters.contracts import (
    MemberLinkRejected,
    MemberLinkRequested,
    ReferralOffered,
    ReferralRewarded,
    SwapCancelled,
    SwapRequested,
    name_digest,
    partner_reply_adapter,
)
from adapters.topics import PartnerTopics
from points import partners, swap_saga
from points.errors import InvalidRequest
from points.events import (
    InboundSwap,
    MemberLinked,
    PartnerPurchase,
    ReferralSignup,
    SwapConfirmed,
    SwapRejected,
)
from points.partners import InboundQuote, PartnerConfig, PartnerError, Quote
from points.ports import (
    Accepted,
    DomainInput,
    InboundMessage,
    MemberLinkRequest,
    MemberLinkResult,
    OutboundMessage,
    PartnerPurchaseNotice,
    ReferralOffer,
    ReferralSignupNotice,
    Refused,
)
from points.signing import REPLAY_WINDOW_S, Headers, KeyRing, SigningKey, sign, verify

__all__ = ["ConfiguredPartner", "request_event_id"]

REASON_MAX_CHARS = 2000


def request_event_id(kind: str, ref: str) -> str:
    """A stable, bounded event id for a request about ``ref`` (ids are at most 64 chars)."""
    digest = hashlib.blake2b(f"{kind}\x1f{ref}".encode(), digest_size=12).hexdigest()
    return f"{kind}-{digest}"


class ConfiguredPartner:
    """Quotes from the configuration, signed requests, verified and decoded replies."""

    def __init__(
        self,
        config: PartnerConfig,
        keys: KeyRing,
        topics: PartnerTopics | None = None,
        *,
        replay_window_s: int = REPLAY_WINDOW_S,
    ) -> None:
        self._config = config
        self._keys = keys
        self._topics = topics or PartnerTopics()
        self._replay_window_s = replay_window_s
        self._signing_key = self._current_key()

    # -------------------------------------------------------------------------- identity

    @property
    def partner_id(self) -> str:
        return self._config.id

    @property
    def config(self) -> PartnerConfig:
        return self._config

    @property
    def events_topic(self) -> str:
        return self._topics.events(self.partner_id)

    @property
    def requests_topic(self) -> str:
        return self._topics.requests(self.partner_id)

    def _current_key(self) -> SigningKey:
        current = self._config.signing_keys[0].key_id
        key = self._keys.get(current)
        if key is None or key.partner_id != self.partner_id:
            raise LookupError(f"partner {self.partner_id}: signing key {current!r} is not loaded")
        return key

    # ---------------------------------------------------------------------------- quotes

    def quote(self, points: int, now: datetime, *, customer_id: str = "") -> Quote:
        return partners.quote(self._config, points, now, customer_id=customer_id)

    def inbound_quote(self, partner_units: int) -> InboundQuote:
        return partners.inbound_quote(self._config, partner_units)

    # -------------------------------------------------------------------------- requests

    def sign(self, value: bytes, now: datetime) -> Headers:
        """Signature headers for a request to this partner: the one place requests are signed,
        when written to the outbox and again by the partner worker's relay when it publishes
        them (so a request relayed late is not stale on arrival)."""
        return sign(value, self._signing_key, now)

    def _message(self, customer_id: str, body: BaseModel, now: datetime) -> OutboundMessage:
        value = body.model_dump_json().encode()
        return OutboundMessage(
            topic=self.requests_topic,
            key=customer_id.encode(),
            value=value,
            headers=self.sign(value, now),
        )

    def swap_request(self, swap: swap_saga.Swap, now: datetime) -> OutboundMessage:
        self._own(swap.partner_id)
        body = SwapRequested(
            event_type="swap_requested",
            event_id=request_event_id("swap-req", swap.swap_id),
            customer_id=swap.customer_id,
            partner_id=swap.partner_id,
            occurred_at=now,
            swap_id=swap.swap_id,
            partner_member_id=swap.partner_member_id,
            points=swap.points,
            partner_points=swap.partner_units,
            quote_id=swap.quote_id,
            rate_version=swap.rate_version,
            deadline_at=swap.deadline_at,
        )
        return self._message(swap.customer_id, body, now)

    def swap_cancellation(self, swap: swap_saga.Swap, now: datetime) -> OutboundMessage:
        self._own(swap.partner_id)
        body = SwapCancelled(
            event_type="swap_cancelled",
            event_id=request_event_id("swap-cancel", swap.swap_id),
            customer_id=swap.customer_id,
            partner_id=swap.partner_id,
            occurred_at=now,
            swap_id=swap.swap_id,
            reason_code="deadline_passed",
            reason=f"no confirmation before {swap.deadline_at.isoformat()}; points returned",
        )
        return self._message(swap.customer_id, body, now)

    def member_link_request(self, request: MemberLinkRequest, now: datetime) -> OutboundMessage:
        if self._config.member_link_requires_name and not request.member_name:
            raise InvalidRequest(f"{self._config.name} matches member names: name required")
        body = MemberLinkRequested(
            event_type="member_link_requested",
            event_id=request.request_id,
            customer_id=request.customer_id,
            partner_id=self.partner_id,
            occurred_at=now,
            partner_member_id=request.partner_member_id,
            member_name_sha256=name_digest(request.member_name) if request.member_name else None,
            referral_id=request.referral_id,
        )
        return self._message(request.customer_id, body, now)

    def referral_offer(self, offer: ReferralOffer, now: datetime) -> OutboundMessage:
        body = ReferralOffered(
            event_type="referral_offered",
            event_id=offer.offer_id,
            customer_id=offer.customer_id,
            partner_id=self.partner_id,
            occurred_at=now,
            referral_code=offer.referral_code,
            campaign=offer.campaign,
            expires_at=offer.expires_at,
        )
        return self._message(offer.customer_id, body, now)

    def referral_reward(
        self, *, reward_id: str, customer_id: str, points: int, referral_id: str, now: datetime
    ) -> OutboundMessage:
        body = ReferralRewarded(
            event_type="referral_rewarded",
            event_id=request_event_id("ref-reward", reward_id),
            customer_id=customer_id,
            partner_id=self.partner_id,
            occurred_at=now,
            referral_id=referral_id,
            points=points,
        )
        return self._message(customer_id, body, now)

    def _own(self, partner_id: str) -> None:
        if partner_id != self.partner_id:
            raise ValueError(f"{self.partner_id} adapter asked to act for {partner_id}")

    # ---------------------------------------------------------------------------- replies

    def interpret(self, message: InboundMessage, now: datetime) -> Accepted | Refused:
        """Signature, then contract, then meaning. Anything refused goes to the DLQ."""
        if not message.value:
            return Refused("empty_value", "message has no value", "decode")
        check = verify(
            message.value,
            message.headers,
            topic=message.topic,
            keys=self._keys,
            now=now,
            window_s=self._replay_window_s,
            topic_for=self._topics.events,
        )
        if not check.ok:
            return Refused(str(check.verdict), check.detail, "signature")
        try:
            event = partner_reply_adapter.validate_json(message.value)
        except ValidationError as exc:
            return _refused_validation(exc)
        if event.partner_id != self.partner_id or check.partner_id != self.partner_id:
            return Refused(
                "partner_id_mismatch",
                f"message names partner {event.partner_id!r}, signed by {check.partner_id!r}, "
                f"on {self.partner_id!r}'s topic",
                "contract",
            )
        if message.key is None or message.key.decode("utf-8", "replace") != event.customer_id:
            return Refused(
                "key_mismatch",
                f"message key {message.key!r} must equal customer_id {event.customer_id!r}",
                "contract",
            )
        try:
            domain = self._to_domain(event, now)
        except PartnerError as exc:
            return Refused(exc.code, exc.message, "semantics")
        assert check.key_id is not None
        return Accepted(
            event_id=event.event_id,
            event_type=event.event_type,
            customer_id=event.customer_id,
            key_id=check.key_id,
            domain=domain,
            event=event,
        )

    def _to_domain(
        self,
        event: PartnerPurchase
        | MemberLinked
        | MemberLinkRejected
        | SwapConfirmed
        | SwapRejected
        | InboundSwap
        | ReferralSignup,
        now: datetime,
    ) -> DomainInput:
        if isinstance(event, SwapConfirmed):
            return swap_saga.PartnerConfirmed(
                swap_id=event.swap_id,
                partner_id=event.partner_id,
                event_id=event.event_id,
                partner_reference=event.partner_reference,
                points=event.points,
                partner_units=event.partner_points,
                at=now,
            )
        if isinstance(event, SwapRejected):
            return swap_saga.PartnerRejected(
                swap_id=event.swap_id,
                partner_id=event.partner_id,
                event_id=event.event_id,
                reason_code=self.rejection_code(event),
                reason=event.reason,
                at=now,
            )
        if isinstance(event, InboundSwap):
            q = self.inbound_quote(event.partner_points)
            rate = self._config.inbound.rate
            credit = swap_saga.inbound_credit(
                partner_id=event.partner_id,
                partner_reference=event.partner_reference,
                customer_id=event.customer_id,
                partner_units=event.partner_points,
                rate_num=rate.num,
                rate_den=rate.den,
            )
            assert credit.points == q.points
            return credit
        if isinstance(event, MemberLinked):
            return MemberLinkResult(
                customer_id=event.customer_id,
                partner_id=event.partner_id,
                partner_member_id=event.partner_member_id,
                linked=True,
                request_id=event.link_request_id,
            )
        if isinstance(event, MemberLinkRejected):
            return MemberLinkResult(
                customer_id=event.customer_id,
                partner_id=event.partner_id,
                partner_member_id=event.partner_member_id,
                linked=False,
                request_id=event.link_request_id,
                reason_code=event.reason_code,
                reason=event.reason,
            )
        if isinstance(event, ReferralSignup):
            return ReferralSignupNotice(
                customer_id=event.customer_id,
                partner_id=event.partner_id,
                partner_member_id=event.partner_member_id,
                referral_code=event.referral_code,
                event_id=event.event_id,
            )
        return PartnerPurchaseNotice(
            event_id=event.event_id,
            customer_id=event.customer_id,
            partner_id=event.partner_id,
            amount_minor=event.amount_minor,
            currency=event.currency,
            at=event.occurred_at,
        )

    def rejection_code(self, event: SwapRejected) -> str:
        """The customer-facing reason code of a partner's rejection (partners may refine it)."""
        return event.reason_code


def _refused_validation(error: ValidationError) -> Refused:
    items = error.errors(include_url=False)
    if any(item["type"] == "json_invalid" for item in items):
        return Refused("invalid_json", str(items[0]["msg"]), "decode")
    parts = []
    for item in items:
        where = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return Refused("contract_violation", "; ".join(parts)[:REASON_MAX_CHARS], "contract")
