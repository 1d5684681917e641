"""The partner events batch: every partner's events topic, one consumed batch, one transaction.

Per message: signature first, then contract, then meaning (the partner's adapter,
``PartnerProgram.interpret``); refusals become dead letters. The batch runs as a
:class:`points.consumed_batch.ConsumedBatch` (inbox ids ``p:<partner>:<event_id>``, so a
replayed batch changes nothing), and each new event goes to its desk:

- ``swap_confirmed`` / ``swap_rejected`` and inbound swaps: points/exchange/swap_desk.py;
- ``member_linked`` / ``member_link_rejected``: points/exchange/link_desk.py;
- referral sign-ups: points/exchange/bank_desk.py; partner purchases qualify referrals
  (points/exchange/referral_desk.py) and earn by the rules
  (points/exchange/partner_earning.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from points import jsonfast
from points.consumed_batch import ConsumedBatch
from points.dead_letters import RejectedMessage
from points.errors import PointsError
from points.events import PartnerPurchase
from points.exchange import referral_records as records
from points.exchange.bank_desk import BankDesk
from points.exchange.effects import Effects, write_effects
from points.exchange.link_desk import LinkDesk
from points.exchange.partner_earning import (
    StaleRuleState,
    plan_partner_earning,
    save_partner_earning,
)
from points.exchange.referral_desk import ReferralDesk
from points.exchange.store import bounded_id
from points.exchange.swap_desk import SwapDesk
from points.inbox import AcceptedEvent
from points.nudges.triggers import NudgeRules
from points.ports import (
    Accepted,
    InboundMessage,
    MemberLinkResult,
    PartnerDirectory,
    PartnerPurchaseNotice,
    ReferralSignupNotice,
)
from points.refusals import record_refusals
from points.rules import RuleSet, load_ruleset
from points.settings import TopicNames

__all__ = ["DEFAULT_RULES_PATH", "BatchOutcome", "PartnerEvents"]

#: The rule file partner purchases earn by when the service is not given a rule set.
DEFAULT_RULES_PATH = Path(__file__).resolve().parents[2] / "rules" / "default.yaml"
#: How often a batch is run again when the earning worker wrote a rule state under it.
STALE_STATE_RETRIES = 3

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchOutcome:
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_reasons: Counter[str] = field(default_factory=Counter)
    swap_outcomes: Counter[str] = field(default_factory=Counter)
    inbound_points: int = 0
    ledger_rejections: int = 0
    referral_outcomes: Counter[str] = field(default_factory=Counter)


class PartnerEvents:
    """Applies consumed batches of the partners' events topics."""

    def __init__(
        self,
        engine: Engine,
        directory: PartnerDirectory,
        topics: TopicNames,
        *,
        swaps: SwapDesk,
        links: LinkDesk,
        bank: BankDesk,
        referrals: ReferralDesk,
        lot_lifetime: timedelta,
        clock: Callable[[], datetime],
        ruleset: RuleSet | None = None,
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._topics = topics
        self._swaps = swaps
        self._links = links
        self._bank = bank
        self._referrals = referrals
        self._lot_lifetime = lot_lifetime
        self._clock = clock
        # Partner purchases earn by the earning worker's rules (settings.rules.path); read
        # on the first partner purchase when not given (the API never needs them).
        self._ruleset = ruleset
        self._nudge_rules: NudgeRules | None = None  # compiled with the rule set, once

    @property
    def events_topics(self) -> list[str]:
        return self._directory.events_topics()

    def process(self, messages: Sequence[InboundMessage]) -> BatchOutcome:
        """One consumed batch of partner events (every partner's topic): signature first,
        then contract, then meaning; one transaction; the caller acks after it returns.

        Run again (from the database) when the earning worker moved a customer's rule state
        on while this batch's partner purchases were being evaluated."""
        for attempt in range(1, STALE_STATE_RETRIES + 1):
            try:
                return self._process(messages)
            except StaleRuleState as stale:
                if attempt == STALE_STATE_RETRIES:
                    raise
                log.info("partner batch retried: %s", stale)
        raise AssertionError("unreachable")

    def _process(self, messages: Sequence[InboundMessage]) -> BatchOutcome:
        now = self._clock()
        outcome = BatchOutcome(messages=len(messages))
        inbox_rows: list[AcceptedEvent] = []
        results: list[Accepted] = []
        rejected: list[RejectedMessage] = []
        for m in messages:
            try:
                program = self._directory.for_events_topic(m.topic)
            except PointsError as exc:
                rejected.append(_reject(m, "unknown_topic", exc.message))
                continue
            result = program.interpret(m, now)
            if not isinstance(result, Accepted):
                rejected.append(_reject(m, result.reason_code, result.detail))
                continue
            event = result.event
            dump = getattr(event, "model_dump", None)
            payload: dict[str, Any] = dump(mode="json") if dump is not None else {}
            inbox_id = bounded_id("p", program.partner_id, result.event_id)
            inbox_rows.append(
                AcceptedEvent(inbox_id, m.topic, result.event_type[:32], result.customer_id,
                              m.partition, m.offset, jsonfast.dumps_bytes(payload))
            )
            results.append(result)
        effects = Effects()
        with ConsumedBatch.begin(self._engine, dlq_topic=self._topics.points_dlq) as batch:
            conn = batch.conn
            fresh = batch.receive(results, inbox_rows, rejected)
            self._swaps.plan_replies(conn, effects, fresh, now)
            self._swaps.plan_inbound(effects, fresh, now)
            self._plan_links_and_referrals(conn, effects, fresh, now)
            self._plan_partner_earning(conn, effects, fresh, now)
            batch.publish(
                write_effects(conn, effects, now, ledger_topic=self._topics.points_ledger)
            )
        outcome.ledger_rejections = effects.ledger_rejections
        outcome.stored = len(fresh)
        outcome.duplicates = len(inbox_rows) - len(fresh)
        outcome.rejected = len(rejected)
        outcome.rejected_reasons.update(r.reason_code for r in rejected)
        for reply in effects.replies:
            outcome.swap_outcomes[f"{reply['outcome']}:{reply['reason']}"] += 1
        outcome.inbound_points = sum(int(r["points"]) for r in effects.inbound)
        outcome.referral_outcomes = effects.referral.outcomes
        return outcome

    def _plan_links_and_referrals(
        self, conn: Connection, effects: Effects, fresh: Sequence[Accepted], now: datetime
    ) -> None:
        work = effects.referral
        purchases: list[records.Purchase] = []
        for a in fresh:
            d = a.domain
            if isinstance(d, MemberLinkResult):
                self._links.decide(conn, work, d, now, a.event_id)
            elif isinstance(d, ReferralSignupNotice):
                self._bank.partner_signup(conn, work, d, now)
            elif isinstance(d, PartnerPurchaseNotice):
                purchases.append(records.Purchase(d.event_id, d.customer_id, d.amount_minor, now))
        if purchases:
            self._referrals.qualify(conn, work, purchases)
        effects.take_referral_work()

    def _plan_partner_earning(
        self, conn: Connection, effects: Effects, fresh: Sequence[Accepted], now: datetime
    ) -> None:
        """Linked members' partner purchases earn by the rules (points/exchange/
        partner_earning.py); an unlinked member's is a recorded refusal."""
        purchases = [a.event for a in fresh if isinstance(a.event, PartnerPurchase)]
        if not purchases:
            return
        if self._ruleset is None:
            self._ruleset = load_ruleset(DEFAULT_RULES_PATH)
        if self._nudge_rules is None:
            self._nudge_rules = NudgeRules(self._ruleset)
        earning = plan_partner_earning(
            conn, purchases, self._ruleset, now=now, lot_lifetime=self._lot_lifetime,
            nudge_rules=self._nudge_rules,
        )
        for earn in earning.earns:
            effects.add(earn, earn.customer_id)
        save_partner_earning(
            conn, earning, self._ruleset, nudges_topic=self._topics.customer_nudges, now=now
        )
        record_refusals(conn, earning.refusals)


def _reject(m: InboundMessage, code: str, reason: str) -> RejectedMessage:
    return RejectedMessage(m.topic, m.partition, m.offset, code, reason[:2000], m.key, m.value)
