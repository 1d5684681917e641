"""Outbox relay: publish rows the ledger wrote to the outbox, then mark them relayed.

Runs as a faust timer on the group leader only, so that normally one process relays. Delivery
is at least once (a crash between the broker's ack and the mark re-sends a row; so may a
rebalance that briefly leaves two leaders). Each message carries ``dedupe_key`` in its headers
for consumers to drop such repeats.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from points.outbox_store import OutboxMessage, OutboxStore

__all__ = ["OutboxRelay", "register_relay"]

log = logging.getLogger(__name__)


def _headers(message: OutboxMessage) -> list[tuple[str, bytes]]:
    headers = [
        (k, v if isinstance(v, bytes) else str(v).encode()) for k, v in message.headers.items()
    ]
    headers.append(("dedupe_key", message.dedupe_key.encode()))
    return headers


class OutboxRelay:
    def __init__(self, store: OutboxStore, send: Any, *, batch_size_max: int = 500) -> None:
        # ``send(topic, key, value, headers)`` returns an awaitable that resolves once the
        # broker acknowledged the message.
        self._store = store
        self._send = send
        self._batch_size_max = batch_size_max

    async def relay_once(self) -> int:
        pending = await asyncio.to_thread(self._store.pending, self._batch_size_max)
        if not pending:
            return 0
        acks = [await self._send(m.topic, m.key, m.value, _headers(m)) for m in pending]
        await asyncio.gather(*acks)
        await asyncio.to_thread(self._store.mark_relayed, [m.id for m in pending])
        return len(pending)


def register_relay(app: faust.App, store: OutboxStore, *, interval_s: float = 0.2) -> OutboxRelay:
    async def send(
        topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Any:
        producer = app.producer
        return await producer.send(
            topic, key, value, partition=None, timestamp=None, headers=headers
        )

    relay = OutboxRelay(store, send)

    @app.timer(interval=interval_s, on_leader=True, name="outbox-relay")
    async def _relay() -> None:
        # Drain what is there; the timer fires again for what arrives later.
        while await relay.relay_once():
            pass

    return relay
