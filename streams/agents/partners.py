"""The partner agents: every configured partner's ``partner.<id>.events`` topic, one batch agent.

Each fetched batch goes to ``ExchangeService.process``: per message the signature is verified
first (key id, HMAC over the exact value bytes, the key's partner owns the topic, replay
window), then the contract, then the meaning; anything refused is dead-lettered (``points.dlq``)
and moves nothing. Then one database transaction: inbox rows, saga transitions, ledger
entries, swap replies, inbound credits, link and referral state, outbox rows. Offsets are
acked only after it commits (streams/fastpath.py).

A timer (``swap-deadlines``, every second, group leader only) expires overdue swaps: void the
hold, outbox ``swap_cancelled``; and refuses referrals whose qualification window closed.

Optionally (``with_bank_topics=True``, only in an app with a consumer group of its own, such as
``python -m streams.partner_worker``) a second batch agent reads ``bank.transactions`` and
``bank.customers`` for referral sign-ups, qualification and clawbacks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from faust.types import Message

from adapters.config import load_partners_config, resolve_keys
from adapters.registry import PartnerRegistry, build_registry
from adapters.topics import PartnerTopics
from points.db import make_engine
from points.decoding import RawMessage
from points.exchange import ExchangeService
from points.partners import PartnersConfig
from points.ports import InboundMessage
from points.referrals import parse_secret
from points.rules import load_ruleset
from points.settings import Settings
from points.signing import Headers
from streams.fastpath import BatchingApp
from streams.runtime import process_with_retry, without_cycle_collector

__all__ = [
    "DEADLINE_INTERVAL_S",
    "REFERRAL_SECRET_ENV",
    "build_exchange_service",
    "build_partner_registry",
    "register_partner_agents",
    "request_signer",
]

log = logging.getLogger(__name__)

DEADLINE_INTERVAL_S = 1.0
REFERRAL_SECRET_ENV = "POINTS_REFERRAL_SECRET"
TOPIC_PREFIX_ENV = "POINTS_PARTNER_TOPIC_PREFIX"
PARTNERS_CONFIG_ENV = "POINTS_PARTNERS_CONFIG"
_DEV_REFERRAL_SECRET = b"points-exchange-dev-referral-secret-not-for-production"


def build_partner_registry(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> tuple[PartnersConfig, PartnerRegistry]:
    """The partners' configuration and programs (keys from the environment, see below)."""
    env = os.environ if environ is None else environ
    path = env.get(PARTNERS_CONFIG_ENV)
    config = load_partners_config(Path(path)) if path else load_partners_config()
    keys = resolve_keys(config, env)
    topics = PartnerTopics(prefix=env.get(TOPIC_PREFIX_ENV, ""), names=settings.kafka.topics)
    return config, build_registry(config, keys, topics)


def request_signer(registry: PartnerRegistry) -> Callable[[str, bytes], Headers | None]:
    """For the outbox relay: sign partner requests again, now, as they are published."""

    def sign(topic: str, value: bytes) -> Headers | None:
        return registry.sign_request(topic, value, datetime.now(UTC))

    return sign


def build_exchange_service(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    engine: Any = None,
    registry: tuple[PartnersConfig, PartnerRegistry] | None = None,
) -> ExchangeService:
    """The service from settings, ``config/partners.yaml`` and the partner keys in the
    environment (``POINTS_PARTNER_KEY_*``; ``POINTS_REFERRAL_SECRET`` hex for codes;
    ``POINTS_PARTNER_TOPIC_PREFIX`` prefixes partner topics, for isolated tests;
    ``POINTS_PARTNERS_CONFIG`` names another partners file)."""
    env = os.environ if environ is None else environ
    config, programs = registry or build_partner_registry(settings, env)
    secret_hex = env.get(REFERRAL_SECRET_ENV)
    if secret_hex:
        secret = parse_secret(secret_hex)  # the API decodes it the same way
    else:
        log.warning("%s is not set: using the development referral secret", REFERRAL_SECRET_ENV)
        secret = _DEV_REFERRAL_SECRET
    return ExchangeService(
        engine or make_engine(settings.database_url, echo=settings.database.echo),
        programs,
        settings.kafka.topics,
        referral_secret=secret,
        zone=config.zone,
        lot_lifetime_days=settings.rules.lot_lifetime_days,
        # the earning worker's rule file: partner purchases earn as backtest says
        ruleset=load_ruleset(settings.rules.path),
    )


def _headers(message: Message) -> tuple[tuple[str, bytes], ...]:
    raw = message.headers
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, Mapping) else raw
    return tuple((str(k), bytes(v)) for k, v in items)


def to_inbound(message: Message) -> InboundMessage:
    return InboundMessage(
        topic=message.topic,
        key=message.key,
        value=message.value,
        headers=_headers(message),
        partition=message.partition,
        offset=message.offset,
    )


async def _with_retry(call: Any, batch: Sequence[Any], tolerance_s: float) -> Any:
    """As the earning agent: retry while the database is away, then exit unacked (code 75)."""

    async def in_a_thread(messages: Sequence[Any]) -> Any:
        return await asyncio.to_thread(without_cycle_collector, call, messages)

    return await process_with_retry(in_a_thread, batch, tolerance_s=tolerance_s)


def register_partner_agents(
    app: BatchingApp,
    settings: Settings,
    service: ExchangeService,
    *,
    with_bank_topics: bool = False,
    deadline_interval_s: float = DEADLINE_INTERVAL_S,
) -> list[faust.TopicT]:
    def topic(name: str) -> faust.TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.kafka.topic_partitions,
        )

    events = [topic(name) for name in service.events_topics]
    tolerance_s = settings.worker.db_outage_tolerance_s

    @app.batch_agent(*events)
    async def partner_events(messages: Sequence[Message]) -> None:
        started = time.perf_counter()
        outcome = await _with_retry(service.process, [to_inbound(m) for m in messages], tolerance_s)
        log.info(
            "partner batch=%d stored=%d duplicates=%d rejected=%s swaps=%s in %.1f ms",
            outcome.messages, outcome.stored, outcome.duplicates,
            dict(outcome.rejected_reasons), dict(outcome.swap_outcomes),
            (time.perf_counter() - started) * 1000,
        )

    # faust's App.timer carries no type hints.
    @app.timer(  # type: ignore[untyped-decorator]
        interval=deadline_interval_s, on_leader=True, name="swap-deadlines"
    )
    async def swap_deadlines() -> None:
        try:
            while await asyncio.to_thread(without_cycle_collector, service.expire_due) > 0:
                pass
        except Exception:  # the next tick retries; a timer must not die
            log.exception("deadline run failed")

    registered = list(events)
    if with_bank_topics:
        bank = [topic(name) for name in service.bank_topics]

        @app.batch_agent(*bank)
        async def referral_qualification(messages: Sequence[Message]) -> None:
            raw = [RawMessage(m.topic, m.partition, m.offset, m.key, m.value) for m in messages]
            outcomes = await _with_retry(service.process_bank, raw, tolerance_s)
            if outcomes:
                log.info("referrals %s", outcomes)

        registered.extend(bank)
    return registered
