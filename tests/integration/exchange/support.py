"""Helpers for exchange tests: a service on the real PostgreSQL with a controllable clock, the
simulated partner's decision logic answering our outbox requests in process, and signed
partner messages built by hand (for the fault and signature cases)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from adapters.config import load_partners_config, resolve_keys
from adapters.registry import PartnerRegistry, build_registry
from adapters.simulator import PartnerSimulator, behaviours_for
from adapters.topics import PartnerTopics
from points.decoding import RawMessage
from points.exchange import ExchangeService
from points.ledger import Earn, apply_batch, verify
from points.outbox import outbox_table
from points.partners import PartnersConfig
from points.ports import InboundMessage
from points.referrals import ReferralPolicy
from points.settings import TopicNames
from points.signing import SigningKey, sign

CONFIG: PartnersConfig = load_partners_config()
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def fresh_keys_env() -> dict[str, str]:
    return {p.signing_keys[0].env: secrets.token_hex(32) for p in CONFIG.partners.values()}


@dataclass
class Exchange:
    """A service plus the partner side of the wire, for in-process tests."""

    engine: Engine
    clock: Clock
    prefix: str
    keys_env: dict[str, str]
    topic_names: TopicNames = field(default_factory=TopicNames)
    reject_rate: float = 0.0
    policy: ReferralPolicy | None = None
    service: ExchangeService = field(init=False)
    registry: PartnerRegistry = field(init=False)
    simulator: PartnerSimulator = field(init=False)
    _offset: int = 0

    def __post_init__(self) -> None:
        keys = resolve_keys(CONFIG, self.keys_env)
        self.registry = build_registry(CONFIG, keys, self.topics)
        self.service = ExchangeService(
            self.engine, self.registry, self.topic_names,
            referral_secret=b"r" * 32, zone=CONFIG.zone, clock=self.clock,
            referral_policy=self.policy,
        )
        partners = list(CONFIG.partners.values())
        self.simulator = PartnerSimulator(
            partners, keys, self.topics,
            behaviours_for(partners, latency_ms=0, reject_rate=self.reject_rate,
                           duplicate_rate=0.0),
        )

    @property
    def topics(self) -> PartnerTopics:
        return PartnerTopics(prefix=self.prefix, names=self.topic_names)

    def key(self, partner_id: str) -> SigningKey:
        ring = resolve_keys(CONFIG, self.keys_env)
        found = ring.get(CONFIG.get(partner_id).signing_keys[0].key_id)
        assert found is not None
        return found

    # -- the wire -------------------------------------------------------------------------

    def pending_requests(self, partner_id: str | None = None) -> list[dict[str, Any]]:
        """Outbox rows for partner request topics, not yet taken by :meth:`take_requests`."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox_table)
                .where(outbox_table.c.relayed_at.is_(None))
                .order_by(outbox_table.c.id)
            ).mappings().all()
        wanted = (
            {self.topics.requests(partner_id)} if partner_id
            else {self.topics.requests(p) for p in CONFIG.partners}
        )
        return [dict(r) for r in rows if r["topic"] in wanted]

    def take_requests(self, partner_id: str | None = None) -> list[dict[str, Any]]:
        rows = self.pending_requests(partner_id)
        if rows:
            with self.engine.begin() as conn:
                conn.execute(
                    update(outbox_table).where(outbox_table.c.id.in_([r["id"] for r in rows]))
                    .values(relayed_at=self.clock.now)
                )
        return rows

    def answers(self, rows: Iterable[dict[str, Any]]) -> list[InboundMessage]:
        """What the simulated partner replies to these requests, as consumed records."""
        out = []
        for r in rows:
            headers = tuple((k, str(v).encode()) for k, v in r["headers"].items())
            reply = self.simulator.answer(r["topic"], r["message_value"], headers, self.clock.now)
            if reply is not None:
                out.append(self.inbound(reply.topic, reply.key, reply.value, reply.headers))
        return out

    def inbound(
        self, topic: str, key: bytes | None, value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> InboundMessage:
        self._offset += 1
        return InboundMessage(topic, key, value, tuple(headers), 0, self._offset)

    def signed(
        self, partner_id: str, body: dict[str, Any], *, topic_of: str | None = None,
        signer: str | None = None, signed_at: datetime | None = None,
    ) -> InboundMessage:
        """A partner event signed with ``signer``'s key, on ``topic_of``'s events topic."""
        value = json.dumps(body).encode()
        headers = sign(value, self.key(signer or partner_id), signed_at or self.clock.now)
        return self.inbound(
            self.topics.events(topic_of or partner_id), body["customer_id"].encode(), value,
            headers,
        )

    def round_trip(self, partner_id: str | None = None) -> list[InboundMessage]:
        """Deliver pending requests to the partner and its replies back to us."""
        replies = self.answers(self.take_requests(partner_id))
        if replies:
            self.service.process(replies)
        return replies

    # -- setup ----------------------------------------------------------------------------

    def fund(self, customer_id: str, points: int) -> None:
        with self.engine.begin() as conn:
            apply_batch(
                conn,
                [Earn(f"fund:{customer_id}:{points}:{secrets.token_hex(4)}", customer_id, points,
                      self.clock.now + timedelta(days=365))],
                now=self.clock.now,
            )

    def link(self, customer_id: str, partner_id: str, member_id: str | None = None) -> None:
        self.service.request_link(customer_id, partner_id, member_id or f"M-{customer_id}",
                                  member_name="Li Lei")
        self.round_trip(partner_id)
        view = self.service.link(customer_id, partner_id)
        assert view is not None and view.status == "linked", view

    def verify_clean(self) -> None:
        with self.engine.connect() as conn:
            report = verify(conn)
        assert report.ok, report.violations


def bank(x: Exchange, topic: str, body: dict[str, Any]) -> RawMessage:
    x._offset += 1
    name = getattr(x.topic_names, topic)
    return RawMessage(name, 0, x._offset, body["customer_id"].encode(), json.dumps(body).encode())


def onboarded(customer_id: str, code: str | None, at: datetime) -> dict[str, Any]:
    return {"event_type": "customer_onboarded", "event_id": f"on-{customer_id}",
            "customer_id": customer_id, "occurred_at": at.isoformat(),
            "joined_at": at.isoformat(), "segment": "mass", "referral_code": code}


def purchase(event_id: str, customer_id: str, amount_minor: int, at: datetime,
             **extra: Any) -> dict[str, Any]:
    return {"event_type": "purchase", "event_id": event_id, "customer_id": customer_id,
            "amount_minor": amount_minor, "currency": "CNY", "mcc": "5411",
            "merchant_id": "m-1", "channel": "card_present", "occurred_at": at.isoformat(),
            **extra}


def event(
    event_type: str, customer_id: str, partner_id: str, event_id: str, at: datetime,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_type": event_type,
        "event_id": event_id,
        "customer_id": customer_id,
        "partner_id": partner_id,
        "occurred_at": at.isoformat(),
        **fields,
    }
