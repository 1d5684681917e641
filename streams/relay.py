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

Outages: a round that fails because the database (the lease, the rows, the mark) or the broker
(a send) is away leaves its rows unmarked; later ticks retry with backoff, with a WARNING every
few seconds, for up to ``outage_tolerance_s`` (``POINTS_WORKER__DB_OUTAGE_TOLERANCE_S``); then
the worker exits with code 75 (streams/runtime.py). Releasing the lease never raises: the lock
is a PostgreSQL session lock, so when the release fails because the connection died, the lock
died with it (and an error there must not hide the round's own error, nor exit with code 1).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError

from points.outbox import BUNDLED_HEADERS, OutboxBundle, OutboxMessage, OutboxStore, unbundle
from streams.runtime import OutageWatch, give_up

__all__ = [
    "DEFAULT_BATCH_SIZE_MAX",
    "DEFAULT_INTERVAL_S",
    "OutboxRelay",
    "PartitionMemo",
    "register_relay",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE_MAX = 500
DEFAULT_INTERVAL_S = 0.2
DEFAULT_OUTAGE_TOLERANCE_S = 60.0


Signer = Callable[[str, bytes], Sequence[tuple[str, bytes]] | None]
"""``sign(topic, value)``: fresh signature headers for that message, or None to keep its own."""

Headers = list[tuple[str, bytes]]
SendMany = Callable[[str, list[tuple[bytes, bytes, Headers]]], Awaitable[list[Any]]]
"""``send_many(topic, [(key, value, headers), ...])``: queue them in order; the awaitables
that resolve once the broker acknowledged them."""

_BUNDLED: Headers = [(k, v.encode()) for k, v in BUNDLED_HEADERS]


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
        send_many: SendMany | None = None,
    ) -> None:
        # ``send(topic, key, value, headers)`` returns an awaitable that resolves once the
        # broker acknowledged the message; ``send_many`` does the same for many messages of
        # one topic at once (for bundles; without it they go one by one).
        if batch_size_max < 1:
            raise ValueError("batch_size_max must be at least 1")
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._store = store
        self._send = send
        self._sign = sign
        self._send_many = send_many
        self.batch_size_max = batch_size_max
        self.interval_s = interval_s

    async def relay_once(self) -> int:
        lease = self._store.lease()
        if not await asyncio.to_thread(lease.__enter__):
            await _release(lease)
            return 0  # another process is relaying this round
        try:
            return await self._relay_round()
        finally:
            await _release(lease)

    async def _relay_round(self) -> int:
        rows = await asyncio.to_thread(self._store.pending_rows, self.batch_size_max)
        if not rows:
            return 0
        sign = self._sign
        acks: list[Any] = []
        sent = 0
        for row in rows:
            if isinstance(row, OutboxBundle) and self._send_many is not None and sign is None:
                # A bundle's messages in bulk, in order (all of one topic, none to sign).
                messages = [
                    (m.key.encode(), m.value, [*_BUNDLED, ("dedupe_key", m.dedupe_key.encode())])
                    for m in unbundle(row.value)
                ]
                acks.extend(await self._send_many(row.topic, messages))
                sent += len(messages)
                continue
            for m in row.messages() if isinstance(row, OutboxBundle) else [row]:
                fresh = sign(m.topic, m.value) if sign else None
                acks.append(await self._send(m.topic, m.key, m.value, _headers(m, fresh)))
                sent += 1
        await asyncio.gather(*acks)
        # Marked only after every message of the round was acknowledged (at least once).
        await asyncio.to_thread(self._store.mark_relayed, [row.id for row in rows])
        return sent

    async def drain(self) -> int:
        """Relay rounds until the outbox is empty; the number of messages relayed."""
        total = 0
        while n := await self.relay_once():
            total += n
        return total


async def _release(lease: Any) -> None:
    """Give the lease back; a failure is logged, never raised (see the module docstring)."""
    try:
        await asyncio.to_thread(lease.__exit__, None, None, None)
    except Exception as exc:
        log.warning("outbox relay lease not released cleanly (it ends with its connection): %s",
                    type(exc).__name__)  # fmt: skip


class PartitionMemo:
    """The partitions the producer's partitioner chose for each key, kept between rounds.

    aiokafka's default partitioner hashes the key with murmur2 in pure Python: ~2 µs per
    message, a tenth of the earning worker process's CPU, for keys (customer ids) that recur
    all day. The choice depends only on the key and the topic's partitions, so it is
    remembered per (topic, partitions) and forgotten wholesale past ``max_keys``.
    """

    def __init__(self, max_keys: int = 500_000) -> None:
        self._max_keys = max_keys
        self._by_layout: dict[tuple[str, tuple[int, ...]], dict[bytes, int]] = {}

    def for_layout(self, topic: str, partitions: list[int]) -> dict[bytes, int]:
        layout = (topic, tuple(partitions))
        chosen = self._by_layout.get(layout)
        if chosen is None or len(chosen) > self._max_keys:
            # A new partition count re-maps keys: drop what was chosen for the old layout.
            self._by_layout = {k: v for k, v in self._by_layout.items() if k[0] != topic}
            chosen = self._by_layout[layout] = {}
        return chosen


async def send_in_batches(
    producer: Any,
    topic: str,
    messages: list[tuple[bytes, bytes, Headers]],
    memo: PartitionMemo | None = None,
) -> list[Any]:
    """Queue ``messages`` on an aiokafka producer as record batches, one builder per partition
    at a time, in order; return the batches' delivery futures.

    Why: ``send()`` costs ~15 µs of Python per message (a future, a partition hash, the
    accumulator), which at 10,000 ledger notifications a second was a sixth of the earning
    worker's CPU. Appending to a batch builder is done in C. Partitions come from the
    producer's own partitioner, so a key lands where ``send()`` would put it, and batches of a
    partition are queued in order behind anything already sent to it.
    """
    partitions = sorted(await producer.partitions_for(topic))
    partitioner = producer._partitioner
    chosen = (memo or PartitionMemo()).for_layout(topic, partitions)
    builders: dict[int, Any] = {}
    futures: list[Any] = []
    for key, value, headers in messages:
        partition = chosen.get(key)
        if partition is None:
            partition = chosen[key] = partitioner(key, partitions, partitions)
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            # Full: send it, then start the next one with this message.
            futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                # Bigger than a whole batch: only send() can take it (it raises if too big).
                del builders[partition]
                futures.append(
                    await producer.send(topic, value, key=key, partition=partition, headers=headers)
                )
    for partition, builder in builders.items():
        futures.append(await producer.send_batch(builder, topic, partition=partition))
    return futures


def register_relay(
    app: faust.App,
    store: OutboxStore,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    batch_size_max: int = DEFAULT_BATCH_SIZE_MAX,
    sign: Signer | None = None,
    outage_tolerance_s: float = DEFAULT_OUTAGE_TOLERANCE_S,
    exit_process: Callable[[int], None] | None = None,
) -> OutboxRelay:
    async def send(
        topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Any:
        producer = app.producer
        return await producer.send(
            topic, key, value, partition=None, timestamp=None, headers=headers
        )

    memo = PartitionMemo()

    async def send_many(topic: str, messages: list[tuple[bytes, bytes, Headers]]) -> list[Any]:
        # faust keeps its aiokafka producer private (pinned: tests/unit/test_fastpath_pin.py).
        producer = cast(Any, app.producer)._ensure_producer()
        return await send_in_batches(producer, topic, messages, memo)

    relay = OutboxRelay(
        store,
        send,
        batch_size_max=batch_size_max,
        interval_s=interval_s,
        sign=sign,
        send_many=send_many,
    )

    database = OutageWatch("the database (outbox relay)", outage_tolerance_s)
    broker = OutageWatch("the broker (outbox relay)", outage_tolerance_s)

    # faust's App.timer carries no type hints.
    @app.timer(  # type: ignore[untyped-decorator]
        interval=interval_s, on_leader=True, name="outbox-relay"
    )
    async def _relay() -> None:
        # Drain what is there; the timer fires again for what arrives later.
        if app.should_stop:
            return
        if database.next_delay_s() > 0 or broker.next_delay_s() > 0:
            return  # backing off: an outage is being waited out
        try:
            await relay.drain()
        except (ProducerSendError, KafkaError) as exc:
            if app.should_stop:
                # The worker is stopping and closed its producer under this round: the round's
                # rows stay unmarked and go out after the restart (at least once), and a clean
                # stop must not turn into a crash exit.
                log.info("outbox relay interrupted by shutdown; unsent rows stay queued")
                return
            _outage(broker, exc)
        except Exception as exc:  # the database: lease, rows or mark (nothing was marked)
            if app.should_stop:
                return
            _outage(database, exc)
        else:
            database.recovered()
            broker.recovered()

    def _outage(watch: OutageWatch, exc: Exception) -> None:
        if watch.failed(exc):
            give_up(
                f"waited {watch.waited_s():.1f} s for {watch.awaited}",
                exit_process if exit_process is not None else os._exit,
            )

    return relay
