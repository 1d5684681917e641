"""The partner exchange on the ledger, as one service over its desks.

Every call is one database transaction. The work is done by the desks; this facade builds
them once and keeps one object for the API, the partner worker and the CLI to call:

=====================================  ======================================================
points/exchange/link_desk.py           member link requests and the partners' replies
points/exchange/swap_desk.py           quotes, swaps (open, cancel, status), partner replies
                                       to swaps, inbound credits, the deadline timer
points/exchange/bank_desk.py           referrals: bank onboarding/purchases/refunds, codes,
                                       joining a partner program, partner sign-ups
points/exchange/partner_events.py      the partner events batch (a consumed batch) that
                                       hands each new event to its desk
points/exchange/referral_desk.py       the referral lifecycle on the ledger (guards, rewards)
points/exchange/effects.py             what one transaction writes, and writing it
points/exchange/store.py               the SQL
=====================================  ======================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from points import partners as pc
from points import referrals as rl
from points.decoding import RawMessage
from points.exchange.bank_desk import BankDesk
from points.exchange.link_desk import LinkDesk, LinkView
from points.exchange.partner_events import BatchOutcome, PartnerEvents
from points.exchange.referral_desk import ReferralDesk
from points.exchange.swap_desk import SwapDesk, SwapOrder, SwapRefused, SwapView
from points.ports import InboundMessage, PartnerDirectory
from points.rules import RuleSet
from points.settings import TopicNames

__all__ = ["ExchangeService"]


class ExchangeService:
    """Link, quote, swap, reply handling, deadlines, inbound credits, referrals."""

    def __init__(
        self,
        engine: Engine,
        directory: PartnerDirectory,
        topics: TopicNames,
        *,
        referral_secret: bytes,
        referral_policy: rl.ReferralPolicy | None = None,
        zone: ZoneInfo | None = None,
        lot_lifetime_days: int = 365,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ruleset: RuleSet | None = None,
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._clock = clock
        zone = zone or ZoneInfo("Asia/Shanghai")
        lot_lifetime = timedelta(days=lot_lifetime_days)
        self.referrals = ReferralDesk(
            directory,
            secret=referral_secret,
            policy=referral_policy or rl.ReferralPolicy(),
            zone=zone,
            lot_lifetime=lot_lifetime,
            points_ledger_topic=topics.points_ledger,
        )
        self.links = LinkDesk(engine, directory, self.referrals, clock=clock)
        self.swaps = SwapDesk(
            engine, directory, self.referrals, ledger_topic=topics.points_ledger, zone=zone,
            lot_lifetime=lot_lifetime, clock=clock,
        )
        self.bank = BankDesk(engine, directory, topics, self.referrals, self.links, clock=clock)
        self.partner_events = PartnerEvents(
            engine, directory, topics, swaps=self.swaps, links=self.links, bank=self.bank,
            referrals=self.referrals, lot_lifetime=lot_lifetime, clock=clock, ruleset=ruleset,
        )

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def events_topics(self) -> list[str]:
        return self.partner_events.events_topics

    @property
    def bank_topics(self) -> list[str]:
        """What referral qualification reads (own consumer group, see docs/partners.md)."""
        return self.bank.bank_topics

    def now(self) -> datetime:
        return self._clock()

    # ---------------------------------------------------------------------------- links

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
        return self.links.request_link(customer_id, partner_id, partner_member_id,
                                       member_name=member_name, referral_id=referral_id)

    def link(self, customer_id: str, partner_id: str) -> LinkView | None:
        return self.links.link(customer_id, partner_id)

    # ---------------------------------------------------------------------------- swaps

    def quote(self, customer_id: str, partner_id: str, points: int) -> pc.Quote:
        return self.swaps.quote(customer_id, partner_id, points)

    def quote_many(self, requests: Sequence[tuple[str, str, int]]) -> list[pc.Quote]:
        """Price several swaps and store the quotes (one statement); raises the first refusal."""
        return self.swaps.quote_many(requests)

    def price(self, customer_id: str, partner_id: str, points: int) -> pc.Quote:
        """The quote :meth:`quote` would store, not stored (the API stores it together with
        its Idempotency-Key, :mod:`points.api.exchange_once`); raises a refusal."""
        return self.swaps.price_many([(customer_id, partner_id, points)])[0]

    def request_swap(
        self, customer_id: str, quote_id: str, *, conn: Connection | None = None
    ) -> SwapView:
        """Accept a quote: hold, swap row and request in one transaction (``conn``'s when
        given: the caller commits it, with whatever else it wrote); raise a refusal."""
        return self.swaps.request_swap(customer_id, quote_id, conn=conn)

    def open_swaps(
        self, orders: Sequence[SwapOrder], *, conn: Connection | None = None
    ) -> list[SwapView | SwapRefused]:
        """Accept quotes in one transaction (:meth:`SwapDesk.open_swaps`; ``conn``'s when
        given, :meth:`SwapDesk.open_swaps_on`)."""
        if conn is not None:
            return self.swaps.open_swaps_on(conn, orders)
        return self.swaps.open_swaps(orders)

    def swap_status(self, customer_id: str, swap_id: str) -> SwapView | None:
        """A customer sees only their own swaps."""
        return self.swaps.swap_status(customer_id, swap_id)

    def customer_swaps(self, customer_id: str, limit: int = 100) -> list[SwapView]:
        return self.swaps.customer_swaps(customer_id, limit)

    def cancel_swap(self, customer_id: str, swap_id: str) -> SwapView:
        """The customer gives up on a swap the partner has not confirmed
        (:meth:`SwapDesk.cancel_swap`)."""
        return self.swaps.cancel_swap(customer_id, swap_id)

    def expire_due(self, limit: int = 1000) -> int:
        """Expire overdue swaps and referral windows (:meth:`SwapDesk.expire_due`)."""
        return self.swaps.expire_due(limit)

    # ------------------------------------------------------------------- consumed batches

    def process(self, messages: Sequence[InboundMessage]) -> BatchOutcome:
        """One consumed batch of partner events (:meth:`PartnerEvents.process`)."""
        return self.partner_events.process(messages)

    def process_bank(self, messages: Sequence[RawMessage]) -> dict[str, int]:
        """bank.transactions and bank.customers for referrals (:meth:`BankDesk.process_bank`)."""
        return self.bank.process_bank(messages)

    # ------------------------------------------------------------------------ referrals

    def referral_code(self, customer_id: str) -> str:
        """The customer's code (created on first use)."""
        return self.bank.referral_code(customer_id)

    def partner_referral_code(self, partner_id: str) -> str:
        """The code a partner's offer carries (its members open accounts with it)."""
        return self.bank.partner_referral_code(partner_id)

    def join_partner(
        self,
        customer_id: str,
        partner_id: str,
        partner_member_id: str,
        *,
        member_name: str | None = None,
    ) -> str:
        """Bank-originated cross-referral (:meth:`BankDesk.join_partner`); the referral id."""
        return self.bank.join_partner(customer_id, partner_id, partner_member_id,
                                      member_name=member_name)

    def referral(self, referral_id: str) -> rl.Referral | None:
        return self.bank.referral(referral_id)

    def referrals_of(self, referee_id: str) -> list[rl.Referral]:
        return self.bank.referrals_of(referee_id)
