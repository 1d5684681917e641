"""Outbox relay: publish rows the ledger wrote to the outbox, then mark them relayed.

Runs as a faust timer on the group leader only, so that normally one process relays. Delivery
is at least once (a crash between the broker's ack and the mark re-sends a row; so may a
rebalance that briefly leaves two leaders). Each message carries ``dedupe_key`` in its headers
for consumers to drop such repeats.

Each round reads up to ``batch_size_max`` rows in id order, hands them all to the producer
(in that order, so one key's messages keep their order on a partition), waits until the broker
acknowledged every one, and only then marks them relayed. The timer drains the outbox round
after round and fires again every ``interval_s`` for what arrives later: the interval bounds the
added latency of an idle relay, the batch size the cost per message of a busy one.

Optionally (``sign``, the partner worker's relay) messages are signed again as they leave:
``sign(topic, value)`` returns fresh signature headers for a partner request (None for any
other topic), which replace the ones stored with the row. The value bytes never change. So a
request that waited in the outbox longer than the partner's replay window (relay down) is not
dropped as stale on arrival.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError

from points.outbox_store import OutboxMessage, OutboxStore

__all__ = [
    "DEFAULT_BATCH_SIZE_MAX",
    "DEFAULT_INTERVAL_S",
    "OutboxRelay",
    "register_relay",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE_MAX = 500
DEFAULT_INTERVAL_S = 0.2


Signer = Callable[[str, bytes], Sequence[tuple[str, bytes]] | None]
"""``sign(topic, value)``: fresh signature headers for that message, or None to keep its own."""


def _headers(
    message: OutboxMessage, fresh: Sequence[tuple[str, bytes]] | None = None
) -> list[tuple[str, bytes]]:
    replaced = {k for k, _ in fresh} if fresh else set()
    headers = [
        (k, v if isinstance(v, bytes) else str(v).encode())
        for k, v in message.headers.items()
        if k not in replaced
    ]
    if fresh:
        headers.extend(fresh)
    headers.append(("dedupe_key", message.dedupe_key.encode()))
    return headers


class OutboxRelay:
    def __init__(
        self,
        store: OutboxStore,
        send: Any,
        *,
        batch_size_max: int = DEFAULT_BATCH_SIZE_MAX,
        interval_s: float = DEFAULT_INTERVAL_S,
        sign: Signer | None = None,
    ) -> None:
        # ``send(topic, key, value, headers)`` returns an awaitable that resolves once the
        # broker acknowledged the message.
        if batch_size_max < 1:
            raise ValueError("batch_size_max must be at least 1")
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._store = store
        self._send = send
        self._sign = sign
        self.batch_size_max = batch_size_max
        self.interval_s = interval_s

    async def relay_once(self) -> int:
        lease = self._store.lease()
        if not await asyncio.to_thread(lease.__enter__):
            await asyncio.to_thread(lease.__exit__, None, None, None)
            return 0  # another process is relaying this round
        try:
            return await self._relay_round()
        finally:
            await asyncio.to_thread(lease.__exit__, None, None, None)

    async def _relay_round(self) -> int:
        pending = await asyncio.to_thread(self._store.pending, self.batch_size_max)
        if not pending:
            return 0
        sign = self._sign
        acks = [
            await self._send(
                m.topic, m.key, m.value, _headers(m, sign(m.topic, m.value) if sign else None)
            )
            for m in pending
        ]
        await asyncio.gather(*acks)
        # Marked only after every message of the round was acknowledged (at least once).
        await asyncio.to_thread(self._store.mark_relayed, [m.id for m in pending])
        return len(pending)

    async def drain(self) -> int:
        """Relay rounds until the outbox is empty; the number of messages relayed."""
        total = 0
        while n := await self.relay_once():
            total += n
        return total


def register_relay(
    app: faust.App,
    store: OutboxStore,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    batch_size_max: int = DEFAULT_BATCH_SIZE_MAX,
    sign: Signer | None = None,
) -> OutboxRelay:
    async def send(
        topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Any:
        producer = app.producer
        return await producer.send(
            topic, key, value, partition=None, timestamp=None, headers=headers
        )

    relay = OutboxRelay(
        store, send, batch_size_max=batch_size_max, interval_s=interval_s, sign=sign
    )

    @app.timer(interval=interval_s, on_leader=True, name="outbox-relay")
    async def _relay() -> None:
        # Drain what is there; the timer fires again for what arrives later.
        if app.should_stop:
            return
        try:
            await relay.drain()
        except (ProducerSendError, KafkaError):
            if not app.should_stop:
                raise
            # The worker is stopping and closed its producer under this round: the round's
            # rows stay unmarked and go out after the restart (at least once), and a clean
            # stop must not turn into a crash exit.
            log.info("outbox relay interrupted by shutdown; unsent rows stay queued")

    return relay
