"""The partner exchange behind ``/v1/me/links`` and ``/v1/me/swaps``.

Every operation goes through :class:`points.exchange.ExchangeService`, the very service the
partner worker runs (``streams/agents/partners.build_exchange_service``), built here the same
way (the partners file, ``POINTS_PARTNER_KEY_*`` signing keys, ``POINTS_PARTNER_TOPIC_PREFIX``)
but without importing the stream framework. The API writes Kafka nothing itself: link and
swap requests and cancellations go to the outbox in the service's transaction, and the worker's
relay publishes them.

Two reads have no service method with the shape the app needs, so they are here, on the
service's own tables and with its own view (:meth:`SwapView.of`): the customer's links, and
their swaps one cursor page at a time.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, or_, select

from adapters.config import MissingSigningKey, resolve_keys
from adapters.registry import build_registry
from adapters.topics import PartnerTopics
from points.api.errors import InvalidCursor
from points.api.schemas import PartnerLink, PartnerLinks, Swap, SwapPage, SwapQuote
from points.exchange import ExchangeService, LinkView, SwapView
from points.exchange.store import swap_from_row
from points.exchange.tables import partner_links, swaps
from points.partners import PartnersConfig, Quote
from points.referrals import parse_secret
from points.settings import TopicNames

__all__ = [
    "LINK_STATUS",
    "build_exchange",
    "customer_links",
    "decode_swap_cursor",
    "encode_swap_cursor",
    "link_body",
    "quote_body",
    "swap_body",
    "swap_page",
]

log = logging.getLogger(__name__)

TOPIC_PREFIX_ENV = "POINTS_PARTNER_TOPIC_PREFIX"
REFERRAL_SECRET_ENV = "POINTS_REFERRAL_SECRET"
# The exchange routes mint no referral code (GET /v1/me/referral mints with the API settings'
# secret, the same variable); the service wants a secret regardless.
_UNUSED_REFERRAL_SECRET = b"points-api-does-not-mint-referral-codes"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: partner_links.status -> what the app sees
LINK_STATUS = {"requested": "pending", "linked": "linked", "rejected": "rejected"}


def build_exchange(
    engine: Engine,
    partners: PartnersConfig,
    topics: TopicNames,
    *,
    environ: Mapping[str, str] | None = None,
    lot_lifetime_days: int = 365,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExchangeService | None:
    """The service, or None (the exchange routes answer 503 ``not_configured``) when a
    partner's signing key is missing from the environment: requests are signed when they are
    written to the outbox, so the API needs the same keys as the partner worker.

    ``engine`` must run real transactions: on PostgreSQL the API's read engine is
    autocommit, so the service gets the same pool with ``READ COMMITTED`` per checkout."""
    env = os.environ if environ is None else environ
    try:
        keys = resolve_keys(partners, env)
    except MissingSigningKey as exc:
        log.warning("partner exchange not configured: %s", exc)
        return None
    registry = build_registry(
        partners, keys, PartnerTopics(prefix=env.get(TOPIC_PREFIX_ENV, ""), names=topics)
    )
    secret_hex = env.get(REFERRAL_SECRET_ENV)
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="READ COMMITTED")
    return ExchangeService(
        engine,
        registry,
        topics,
        referral_secret=parse_secret(secret_hex) if secret_hex else _UNUSED_REFERRAL_SECRET,
        zone=partners.zone,
        lot_lifetime_days=lot_lifetime_days,
        clock=clock,
    )


# ---------------------------------------------------------------------------------- bodies


def link_body(view: LinkView) -> PartnerLink:
    return PartnerLink(partner_id=view.partner_id, partner_member_id=view.partner_member_id,
                       status=LINK_STATUS.get(view.status, "pending"),  # type: ignore[arg-type]
                       reason=view.reason)


def quote_body(quote: Quote) -> SwapQuote:
    return SwapQuote(
        quote_id=quote.quote_id, partner_id=quote.partner_id, rate_version=quote.rate_version,
        points=quote.points, fee_points=quote.fee_points, total_points=quote.total_points,
        partner_units=quote.partner_units, rate_num=quote.rate_num, rate_den=quote.rate_den,
        quoted_at=quote.quoted_at, expires_at=quote.expires_at,
    )


def swap_body(view: SwapView) -> Swap:
    return Swap(
        swap_id=view.swap_id, partner_id=view.partner_id, points=view.points,
        fee_points=view.fee_points, partner_units=view.partner_units,
        status=view.status,  # type: ignore[arg-type]
        reason=view.reason, requested_at=view.requested_at, deadline_at=view.deadline_at,
        partner_reference=view.partner_reference,
    )


# ----------------------------------------------------------------------------------- reads


def customer_links(conn: Connection, customer_id: str) -> PartnerLinks:
    rows = conn.execute(
        select(partner_links.c.customer_id, partner_links.c.partner_id,
               partner_links.c.partner_member_id, partner_links.c.status,
               partner_links.c.request_id, partner_links.c.reason)
        .where(partner_links.c.customer_id == customer_id)
        .order_by(partner_links.c.partner_id)
    ).all()
    return PartnerLinks(items=[
        link_body(LinkView(str(c), str(p), str(m), str(s), str(r), reason))
        for c, p, m, s, r, reason in rows
    ])


def encode_swap_cursor(requested_at: datetime, swap_id: str) -> str:
    micros = (requested_at - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"s:{micros}:{swap_id}".encode()).decode().rstrip("=")


def decode_swap_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """(requested_at, swap_id) the page starts after; only the caller's own swaps are read,
    so a forged cursor can do no more than page the caller's own swaps."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, number, swap_id = raw.split(":", 2)
        micros = int(number)
        at = _EPOCH + timedelta(microseconds=micros)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise InvalidCursor("the cursor is not one this API returned") from None
    if prefix != "s" or number != str(micros) or not swap_id or not swap_id.isascii():
        raise InvalidCursor("the cursor is not one this API returned")
    return at, swap_id


def swap_page(conn: Connection, customer_id: str, *, cursor: str | None, limit: int) -> SwapPage:
    """The customer's swaps, newest first (requested_at, then swap id, both descending)."""
    after = decode_swap_cursor(cursor)
    query = select(swaps).where(swaps.c.customer_id == customer_id)
    if after is not None:
        at, swap_id = after
        query = query.where(or_(swaps.c.requested_at < at,
                                and_(swaps.c.requested_at == at, swaps.c.swap_id < swap_id)))
    rows = conn.execute(
        query.order_by(swaps.c.requested_at.desc(), swaps.c.swap_id.desc()).limit(limit + 1)
    ).mappings().all()
    views = [SwapView.of(swap_from_row(r)) for r in rows[:limit]]
    next_cursor = (
        encode_swap_cursor(views[-1].requested_at, views[-1].swap_id)
        if len(rows) > limit and views else None
    )
    return SwapPage(items=[swap_body(v) for v in views], next_cursor=next_cursor)
