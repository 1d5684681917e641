"""A simulated partner: answers ``partner.<id>.requests`` on ``partner.<id>.events``.

    python -m adapters.simulator --partner ridehail [--latency-ms N] [--reject-rate R]
        [--duplicate-rate D] [--seed S] [--topic-prefix P] [--config PATH] [--quiet]
    python -m adapters.simulator --partner all        # every configured partner, one process

It behaves like a real partner integration: it verifies our signature on each request (and
drops what fails, as a partner would), answers after ``latency``, and signs its replies with
its own key exactly as the integration guide (docs/partners.md) tells partners to.

- ``swap_requested``        -> ``swap_confirmed``, or ``swap_rejected`` (reject rate)
- ``member_link_requested`` -> ``member_linked``, or ``member_link_rejected`` (reject rate)
- ``swap_cancelled``, ``referral_offered`` -> logged, no reply

Decisions (reject? duplicate?) are drawn from ``Random(f"{seed}:{request event_id}")``: a
request re-read after a restart gets the same answer, with the same reply event id, like a
partner that stores its decisions. Duplicate replies are sent byte for byte twice.

Offsets are committed only after a batch's replies were acknowledged by the broker. SIGTERM
(or SIGINT) finishes the batch in hand, commits, leaves the group and exits 0; a SIGKILL loses
the uncommitted batch, which the restarted simulator answers again (duplicates the exchange
must, and does, tolerate).

Signing keys come from the environment variables named in ``config/partners.yaml``.

It logs one JSON object per line: ``started``, ``reply`` (one per reply), ``dropped``,
``noted``, ``stopped``. With ``--quiet`` (load tests: at thousands of replies a second the
per-reply line was a visible share of the simulator's time) the ``reply`` lines are replaced
by one ``batch`` line per consumed batch (``records``, ``replies``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, ValidationError

from adapters.config import DEFAULT_CONFIG_PATH, load_partners_config, resolve_keys
from adapters.contracts import (
    MemberLinkRejected,
    MemberLinkRequested,
    ReferralOffered,
    ReferralRewarded,
    SwapCancelled,
    SwapRequested,
    partner_request_adapter,
)
from adapters.topics import PartnerTopics, ensure_topics
from points.errors import PointsError
from points.events import MemberLinked, SwapConfirmed, SwapRejected
from points.partners import BASIS_POINTS, PartnerConfig, PartnersConfig
from points.settings import KafkaSettings, load_settings
from points.signing import KeyRing, SigningKey, sign, verify
from streams import kafka_clients

__all__ = ["Behaviour", "PartnerSimulator", "main", "parse_args"]

BATCH_SIZE_MAX = 1000
POLL_TIMEOUT_MS = 500
# aiokafka's default (500 ms) is how long the broker may hold a fetch for partitions without
# new records; while it is in flight, partitions whose buffered records were just consumed are
# not fetched again, so a short wait keeps a busy partition's latency low.
FETCH_MAX_WAIT_MS = 50


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one simulated partner answers. Rates are basis points (0..10 000)."""

    latency_ms: int
    reject_rate_bp: int
    duplicate_rate_bp: int
    reject_reason_code: str
    reject_reason: str


@dataclass(frozen=True, slots=True)
class Reply:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    copies: int


def _log(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


def _short_hash(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


class PartnerSimulator:
    """Answers requests for one or more partners; pure decision logic in :meth:`answer`."""

    def __init__(
        self,
        partners: Sequence[PartnerConfig],
        keys: KeyRing,
        topics: PartnerTopics,
        behaviours: dict[str, Behaviour],
        *,
        seed: int = 0,
        log_replies: bool = True,
    ) -> None:
        self._partners = {p.id: p for p in partners}
        self._log_replies = log_replies
        self._keys = keys
        self._topics = topics
        self._behaviours = behaviours
        self._seed = seed
        self._signing: dict[str, SigningKey] = {}
        for p in partners:
            key = keys.get(p.signing_keys[0].key_id)
            if key is None:
                raise LookupError(f"partner {p.id}: signing key {p.signing_keys[0].key_id} missing")
            self._signing[p.id] = key
        self._by_request_topic = {topics.requests(pid): pid for pid in self._partners}

    @property
    def request_topics(self) -> list[str]:
        return list(self._by_request_topic)

    @property
    def event_topics(self) -> list[str]:
        return [self._topics.events(pid) for pid in self._partners]

    def behaviour(self, partner_id: str) -> Behaviour:
        return self._behaviours[partner_id]

    def answer(
        self,
        topic: str,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        now: datetime,
    ) -> Reply | None:
        """The reply to one request record, or None (dropped or nothing to say)."""
        partner_id = self._by_request_topic.get(topic)
        if partner_id is None:
            _log("dropped", topic=topic, reason="not a requests topic of ours")
            return None
        if not value:
            _log("dropped", topic=topic, reason="empty_value")
            return None
        check = verify(
            value, headers, topic=topic, keys=self._keys, now=now, topic_for=self._topics.requests
        )
        if not check.ok:
            _log("dropped", topic=topic, reason=str(check.verdict), detail=check.detail)
            return None
        try:
            request = partner_request_adapter.validate_json(value)
        except ValidationError as exc:
            _log("dropped", topic=topic, reason="contract_violation", detail=str(exc)[:500])
            return None
        if request.partner_id != partner_id:
            _log("dropped", topic=topic, reason="partner_id_mismatch")
            return None
        rng = random.Random(f"{self._seed}:{partner_id}:{request.event_id}")
        behaviour = self._behaviours[partner_id]
        reject = rng.randrange(BASIS_POINTS) < behaviour.reject_rate_bp
        copies = 2 if rng.randrange(BASIS_POINTS) < behaviour.duplicate_rate_bp else 1
        body: BaseModel
        if isinstance(request, SwapRequested):
            body = self._swap_reply(request, reject, behaviour, now)
        elif isinstance(request, MemberLinkRequested):
            body = self._link_reply(request, reject, now)
        else:
            assert isinstance(request, SwapCancelled | ReferralOffered | ReferralRewarded)
            _log("noted", partner=partner_id, type=request.event_type, id=request.event_id)
            return None
        reply_value = body.model_dump_json().encode()
        if self._log_replies:
            _log(
                "reply",
                partner=partner_id,
                request=request.event_id,
                type=getattr(body, "event_type", "?"),
                copies=copies,
            )
        return Reply(
            topic=self._topics.events(partner_id),
            key=request.customer_id.encode(),
            value=reply_value,
            headers=sign(reply_value, self._signing[partner_id], now),
            copies=copies,
        )

    def _swap_reply(
        self, request: SwapRequested, reject: bool, behaviour: Behaviour, now: datetime
    ) -> SwapConfirmed | SwapRejected:
        if reject:
            return SwapRejected.model_validate(
                {
                    "event_type": "swap_rejected",
                    "event_id": f"{request.partner_id}-rej-{_short_hash(request.swap_id)}",
                    "customer_id": request.customer_id,
                    "partner_id": request.partner_id,
                    "occurred_at": now,
                    "swap_id": request.swap_id,
                    "reason_code": behaviour.reject_reason_code,
                    "reason": behaviour.reject_reason,
                }
            )
        return SwapConfirmed(
            event_type="swap_confirmed",
            event_id=f"{request.partner_id}-conf-{_short_hash(request.swap_id)}",
            customer_id=request.customer_id,
            partner_id=request.partner_id,
            occurred_at=now,
            swap_id=request.swap_id,
            partner_reference=f"{request.partner_id.upper()}-{_short_hash('ref', request.swap_id)}",
            points=request.points,
            partner_points=request.partner_points,
        )

    def _link_reply(
        self, request: MemberLinkRequested, reject: bool, now: datetime
    ) -> MemberLinked | MemberLinkRejected:
        partner = self._partners[request.partner_id]
        if reject:
            by_name = partner.member_link_requires_name
            return MemberLinkRejected(
                event_type="member_link_rejected",
                event_id=f"{request.partner_id}-lrej-{_short_hash(request.event_id)}",
                customer_id=request.customer_id,
                partner_id=request.partner_id,
                occurred_at=now,
                partner_member_id=request.partner_member_id,
                link_request_id=request.event_id,
                reason_code="name_mismatch" if by_name else "member_not_found",
                reason=(
                    "member name differs from the name the bank sent"
                    if by_name
                    else "no member with this id"
                ),
            )
        return MemberLinked(
            event_type="member_linked",
            event_id=f"{request.partner_id}-link-{_short_hash(request.event_id)}",
            customer_id=request.customer_id,
            partner_id=request.partner_id,
            occurred_at=now,
            partner_member_id=request.partner_member_id,
            link_request_id=request.event_id,
        )

    # ------------------------------------------------------------------------------ running

    async def _handle(self, producer: AIOKafkaProducer, record: ConsumerRecord[Any, Any]) -> int:
        """Answer one record; the number of replies sent (copies included)."""
        partner_id = self._by_request_topic.get(record.topic)
        latency_ms = self._behaviours[partner_id].latency_ms if partner_id else 0
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        headers = tuple((k, bytes(v)) for k, v in (record.headers or ()))
        reply = self.answer(record.topic, record.value, headers, datetime.now(UTC))
        if reply is None:
            return 0
        for _ in range(reply.copies):
            # Awaiting the delivery future: the offset is committed only after the broker has
            # the reply (at least once, like a partner that commits after publishing).
            future = await producer.send(
                reply.topic, value=reply.value, key=reply.key, headers=list(reply.headers)
            )
            await future
        return reply.copies

    async def run(self, kafka: KafkaSettings, group_id: str, stop: asyncio.Event) -> None:
        """Answer requests until ``stop``, connected as ``kafka`` says (POINTS_KAFKA__*: on a
        secured cluster, the partner's own principal)."""
        consumer = kafka_clients.consumer(
            kafka,
            *self.request_topics,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_poll_records=BATCH_SIZE_MAX,
        )
        producer = kafka_clients.producer(kafka, linger_ms=5)
        await producer.start()
        try:
            await consumer.start()
            try:
                _log("started", partners=sorted(self._partners), group=group_id)
                while not stop.is_set():
                    batch = await consumer.getmany(
                        timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_SIZE_MAX
                    )
                    records = [r for items in batch.values() for r in items]
                    if not records:
                        continue
                    sent = await asyncio.gather(*(self._handle(producer, r) for r in records))
                    await consumer.commit()
                    if not self._log_replies:
                        _log("batch", records=len(records), replies=sum(sent))
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
        _log("stopped")


def behaviours_for(
    partners: Sequence[PartnerConfig],
    *,
    latency_ms: int | None,
    reject_rate: float | None,
    duplicate_rate: float | None,
) -> dict[str, Behaviour]:
    """Each partner's profile from the configuration, with command-line overrides."""
    out = {}
    for p in partners:
        profile = p.simulator
        out[p.id] = Behaviour(
            latency_ms=profile.latency_ms if latency_ms is None else latency_ms,
            reject_rate_bp=(
                profile.reject_rate_bp if reject_rate is None else _rate_bp(reject_rate)
            ),
            duplicate_rate_bp=0 if duplicate_rate is None else _rate_bp(duplicate_rate),
            reject_reason_code=profile.reject_reason_code,
            reject_reason=profile.reject_reason,
        )
    return out


def _rate_bp(rate: float) -> int:
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"rate {rate} must be between 0 and 1")
    return round(rate * BASIS_POINTS)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m adapters.simulator", description=__doc__)
    parser.add_argument("--partner", action="append", required=True,
                        help="partner id (repeatable), or 'all'")
    parser.add_argument("--latency-ms", type=int, default=None)
    parser.add_argument("--reject-rate", type=float, default=None, help="0..1")
    parser.add_argument("--duplicate-rate", type=float, default=None, help="0..1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--group", default=None, help="consumer group (default derived)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--quiet", action="store_true",
                        help="one 'batch' log line per consumed batch instead of one per reply")
    args = parser.parse_args(argv)
    if args.latency_ms is not None and args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    for name in ("reject_rate", "duplicate_rate"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    return args


def _select(config: PartnersConfig, wanted: list[str]) -> list[PartnerConfig]:
    ids = list(config.partners) if "all" in wanted else list(dict.fromkeys(wanted))
    return [config.get(pid) for pid in ids]


async def _main(args: argparse.Namespace) -> int:
    settings = load_settings()
    config = load_partners_config(args.config)
    chosen = _select(config, args.partner)
    keys = resolve_keys(config, os.environ, partner_ids=[p.id for p in chosen])
    topics = PartnerTopics(prefix=args.topic_prefix, names=settings.kafka.topics)
    simulator = PartnerSimulator(
        chosen,
        keys,
        topics,
        behaviours_for(
            chosen,
            latency_ms=args.latency_ms,
            reject_rate=args.reject_rate,
            duplicate_rate=args.duplicate_rate,
        ),
        seed=args.seed,
        log_replies=not args.quiet,
    )
    await ensure_topics(
        settings.kafka,
        simulator.request_topics + simulator.event_topics,
        settings.kafka.topic_partitions,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    group = args.group or f"{args.topic_prefix}partner-simulator-{'-'.join(p.id for p in chosen)}"
    await simulator.run(settings.kafka, group, stop)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except (LookupError, PointsError, ValidationError, OSError) as exc:
        # Unknown partner, missing signing key, invalid or unreadable configuration.
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
