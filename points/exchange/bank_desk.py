"""The bank events desk: referrals from the bank's own topics, the app and the partners.

- :meth:`BankDesk.process_bank`: bank.transactions and bank.customers, read in the exchange's
  own consumer group: onboarding with a referral code signs a referral up, a referee's purchase
  qualifies it, a refund of the qualifying purchase claws the rewards back;
- the app's side: a customer's referral code, a partner's, and ``join_partner`` (a customer
  joins a partner program from the app: a bank-originated cross-referral);
- :meth:`BankDesk.partner_signup`: a partner's member opened a bank account with a code (a
  partner-originated referral, from the partner events batch).

The referral lifecycle itself runs in points/exchange/referral_desk.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from points import referrals as rl
from points.consumed_batch import ConsumedBatch
from points.decoding import Decoder, RawMessage, classify
from points.events import (
    CustomerOnboarded,
    CustomerProfile,
    Purchase,
    Refund,
    Reversal,
    bank_customer_adapter,
    bank_transaction_adapter,
)
from points.exchange import referral_records as records
from points.exchange.effects import Effects, write_effects
from points.exchange.link_desk import LinkDesk
from points.exchange.referral_desk import ReferralDesk
from points.exchange.referral_records import (
    CustomerSeen,
    Work,
    new_referral_id,
    referral_refusal,
    write_work,
)
from points.exchange.store import aware
from points.gifts import fission
from points.ports import PartnerDirectory, ReferralSignupNotice
from points.settings import TopicNames

__all__ = ["BankDesk"]


class BankDesk:
    """Referrals: the bank's onboarding and card events, codes, joining a partner program."""

    def __init__(
        self,
        engine: Engine,
        directory: PartnerDirectory,
        topics: TopicNames,
        referrals: ReferralDesk,
        links: LinkDesk,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._topics = topics
        self._referrals = referrals
        self._links = links
        self._clock = clock
        self._decoders: dict[str, Decoder] = {
            topics.bank_transactions: bank_transaction_adapter,
            topics.bank_customers: bank_customer_adapter,
        }

    @property
    def bank_topics(self) -> list[str]:
        """What referral qualification reads (own consumer group, see docs/partners.md)."""
        return list(self._decoders)

    # ------------------------------------------------------------------------ bank topics

    def process_bank(self, messages: Sequence[RawMessage]) -> dict[str, int]:
        """bank.transactions and bank.customers, read in this service's own consumer group:
        onboarding with a referral code signs a referral up; a referee's purchase qualifies
        it; a refund of the qualifying purchase claws the rewards back.

        A consumed batch without an inbox: the earning pipeline owns ``inbound_events`` for
        these ids. Replays are harmless because every step is a state transition (a signed-up
        referral signs up once, a qualified one does not qualify again) and ledger keys derive
        from the referral id. Bad messages are the earning pipeline's to dead-letter; here
        they are skipped.
        """
        decoded, _ = classify(messages, self._decoders)
        now = self._clock()
        effects = Effects()
        work = effects.referral
        purchases: list[records.Purchase] = []
        refunds: list[records.Refund] = []
        onboarded: list[CustomerOnboarded] = []
        seen: list[CustomerSeen] = []
        for item in decoded:
            event = item.event
            seen.append(_customer_seen(event))
            if isinstance(event, Purchase):
                purchases.append(records.Purchase(event.event_id, event.customer_id,
                                                  event.amount_minor, aware(event.occurred_at)))
            elif isinstance(event, Refund | Reversal):
                refunds.append(records.Refund(event.event_id, event.original_event_id,
                                              aware(event.occurred_at)))
            elif isinstance(event, CustomerOnboarded) and event.referral_code:
                onboarded.append(event)
        if not seen:
            return {}
        with ConsumedBatch.begin(self._engine, dlq_topic=self._topics.points_dlq) as batch:
            conn = batch.conn
            # First, so the guards below see this batch's profiles and identity hashes too;
            # an onboarding's own evidence is never "before" itself (known_since == joined_at).
            self._referrals.note_customers(conn, seen, now)
            for event in onboarded:
                self._on_onboarded(conn, work, event, now)
            if purchases:
                self._referrals.qualify(conn, work, purchases)
            if refunds:
                self._referrals.refund(conn, work, refunds)
            effects.take_referral_work()
            batch.publish(
                write_effects(conn, effects, now, ledger_topic=self._topics.points_ledger)
            )
        return dict(work.outcomes)

    def _on_onboarded(
        self, conn: Connection, work: Work, event: CustomerOnboarded, now: datetime
    ) -> None:
        """An onboarding with a code ends in a referral row (signed up, or refused by a guard)
        or, when the code names no one, a recorded refusal ``referral:<event_id>``."""
        assert event.referral_code is not None
        packet = fission.packet_for_code(conn, event.referral_code)
        if packet is not None:
            self._on_packet_onboarded(conn, work, event, packet, now)
            return
        try:
            code = rl.normalise_code(event.referral_code)
        except rl.InvalidReferralCode:
            _refuse_code(work, event, rl.RefusalReason.INVALID_CODE, now)
            return
        owner = self._referrals.code_owner(conn, code)
        if owner is None:
            _refuse_code(work, event, rl.RefusalReason.UNKNOWN_CODE, now)
            return
        origin = rl.Origin.CUSTOMER_INVITE if owner.kind == "customer" else rl.Origin.PARTNER_MEMBER
        referral_id = new_referral_id("ci", code, event.customer_id)
        if referral_id in work.rows or self._referrals.load(conn, [referral_id]):
            return  # a replay: this onboarding's outcome is already recorded
        referral = rl.invite(
            referral_id=referral_id, origin=origin, referrer=owner, now=now, code=code,
            partner_id=owner.id if owner.kind == "partner" else None,
        )
        self._referrals.sign_up(
            conn, work, referral, event.customer_id, now, identity_hash=event.identity_hash,
            joined_at=aware(event.joined_at), event_id=event.event_id,
        )

    def _on_packet_onboarded(self, conn: Connection, work: Work, event: CustomerOnboarded,
                             packet: dict[str, Any], now: datetime) -> None:
        """Onboarded with a red packet's code (points/gifts/fission.py): the new customer
        claims a share, and the packet's sender is their referrer, through the same guards."""
        referral_id = new_referral_id("pk", packet["packet_id"], event.customer_id)
        if referral_id in work.rows or self._referrals.load(conn, [referral_id]):
            return  # a replay: this onboarding's outcome is already recorded
        fission.onboard(conn, packet=packet, customer_id=event.customer_id, now=now,
                        event_id=event.event_id, ledger_topic=self._topics.points_ledger)
        referral = rl.invite(referral_id=referral_id, origin=rl.Origin.CUSTOMER_INVITE,
                             referrer=rl.Party("customer", packet["sender_id"]), now=now)
        outcome = self._referrals.sign_up(
            conn, work, referral, event.customer_id, now, identity_hash=event.identity_hash,
            joined_at=aware(event.joined_at), event_id=event.event_id,
        )
        if outcome.referral.status != rl.ReferralStatus.REFUSED:
            fission.record_generation(conn, packet=packet, customer_id=event.customer_id,
                                      referral_id=referral_id, now=now)

    # ------------------------------------------------------------------ partner referrals

    def partner_signup(
        self, conn: Connection, work: Work, notice: ReferralSignupNotice, now: datetime
    ) -> None:
        """A partner's member opened a bank account with a code (partner-originated)."""
        owner = self._referrals.code_owner(conn, notice.referral_code)
        referrer = owner if owner is not None and owner.kind == "customer" else rl.Party(
            "partner", notice.partner_id)
        referral_id = new_referral_id("pm", notice.partner_id, notice.customer_id)
        existing = self._referrals.load(conn, [referral_id]).get(referral_id)
        if existing is not None:
            return
        referral = rl.invite(
            referral_id=referral_id, origin=rl.Origin.PARTNER_MEMBER, referrer=referrer,
            now=now, code=notice.referral_code if rl.is_valid_code(notice.referral_code) else None,
            partner_id=notice.partner_id,
        )
        self._referrals.sign_up(conn, work, referral, notice.customer_id, now,
                                event_id=notice.event_id)

    # ------------------------------------------------------------------- app-side referrals

    def referral_code(self, customer_id: str) -> str:
        """The customer's code (created on first use)."""
        with self._engine.begin() as conn:
            return self._referrals.code_for(conn, "customer", customer_id, self._clock())

    def partner_referral_code(self, partner_id: str) -> str:
        """The code a partner's offer carries (its members open accounts with it)."""
        self._directory.get(partner_id)
        with self._engine.begin() as conn:
            return self._referrals.code_for(conn, "partner", partner_id, self._clock())

    def join_partner(
        self,
        customer_id: str,
        partner_id: str,
        partner_member_id: str,
        *,
        member_name: str | None = None,
    ) -> str:
        """Bank-originated cross-referral: the customer joins a partner program from the app.
        Creates the referral (referrer: the bank) and the member-link request carrying its id;
        it signs up when the partner links the member. Returns the referral id."""
        now = self._clock()
        referral_id = new_referral_id("pj", partner_id, customer_id)
        with self._engine.begin() as conn:
            if not self._referrals.load(conn, [referral_id]):
                work = Work()
                work.rows[referral_id] = rl.invite(
                    referral_id=referral_id, origin=rl.Origin.PARTNER_JOIN,
                    referrer=rl.Party("bank", "bank"), now=now, partner_id=partner_id,
                )
                write_work(conn, work)
        self._links.request_link(customer_id, partner_id, partner_member_id,
                                 member_name=member_name, referral_id=referral_id)
        return referral_id

    def referral(self, referral_id: str) -> rl.Referral | None:
        with self._engine.connect() as conn:
            return self._referrals.load(conn, [referral_id], lock=False).get(referral_id)

    def referrals_of(self, referee_id: str) -> list[rl.Referral]:
        with self._engine.connect() as conn:
            return self._referrals.of_referee(conn, referee_id)


def _refuse_code(
    work: Work, event: CustomerOnboarded, reason: rl.RefusalReason, now: datetime
) -> None:
    work.outcomes[f"signup:{reason}"] += 1
    work.refusals.append(referral_refusal(
        dedupe_id=event.event_id, reason_code=str(reason),
        reason=f"{event.customer_id} onboarded with code {event.referral_code!r}: "
               f"{rl.REFUSAL_TEXT[reason]}",
        at=now, subject_id=event.event_id, event_id=event.event_id,
        customer_id=event.customer_id,
    ))


def _customer_seen(event: Any) -> CustomerSeen:
    """A bank message as evidence that its customer exists: a profile or onboarding from its
    ``joined_at`` (with its identity hash), a transaction from when it occurred."""
    # In UTC: SQLite keeps a timestamp's wall time without its offset.
    if isinstance(event, CustomerProfile | CustomerOnboarded):
        return CustomerSeen(event.customer_id, event.joined_at.astimezone(UTC),
                            f"{event.event_type} {event.event_id}", event.identity_hash)
    return CustomerSeen(event.customer_id, event.occurred_at.astimezone(UTC),
                        f"{event.event_type} {event.event_id}")
