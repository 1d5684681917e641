"""The outbox relay (streams/relay.py): batch size and interval are the constructor's, and a
round marks its rows relayed only after the broker acknowledged every one of them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from points.outbox import OutboxBundle, OutboxMessage, bundle_row
from streams.relay import (
    DEFAULT_BATCH_SIZE_MAX,
    DEFAULT_INTERVAL_S,
    Headers,
    OutboxRelay,
    PartitionMemo,
    send_in_batches,
)


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Yield to the loop until ``condition()`` holds. The relay reads the outbox in a worker
    thread, so how long it takes to reach its sends depends on the machine's load: wait for
    what the test needs, not for a fixed time."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        await asyncio.sleep(0.001)


class FakeStore:
    def __init__(self, n: int) -> None:
        self.rows = [
            OutboxMessage(i, "t", b"k", b"v%d" % i, {"h": "1"}, f"d{i}") for i in range(1, n + 1)
        ]
        self.marked: list[list[int]] = []
        self.limits: list[int] = []

    def pending_rows(self, limit: int) -> list[OutboxMessage]:
        self.limits.append(limit)
        done = {i for ids in self.marked for i in ids}
        return [r for r in self.rows if r.id not in done][:limit]

    def mark_relayed(self, ids: list[int]) -> None:
        self.marked.append(list(ids))

    @contextlib.contextmanager
    def lease(self) -> Iterator[bool]:
        yield self.leased

    leased = True


class FakeBroker:
    """``send`` enqueues and returns a future the test resolves (the broker's ack)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        self.acks: list[asyncio.Future[None]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Any:
        self.sent.append((topic, key, value, headers))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(fut)
        return fut


def test_defaults_are_unchanged_for_the_earning_worker() -> None:
    """Defaults are unchanged for the earning worker."""
    relay = OutboxRelay(FakeStore(0), FakeBroker().send)  # type: ignore[arg-type]
    assert (relay.batch_size_max, relay.interval_s) == (DEFAULT_BATCH_SIZE_MAX, DEFAULT_INTERVAL_S)
    assert (DEFAULT_BATCH_SIZE_MAX, DEFAULT_INTERVAL_S) == (500, 0.2)


@pytest.mark.parametrize("kwargs", [{"batch_size_max": 0}, {"interval_s": 0.0}])
def test_rejects_nonsense_tuning(kwargs: dict[str, Any]) -> None:
    """Rejects nonsense tuning."""
    with pytest.raises(ValueError):
        OutboxRelay(FakeStore(0), FakeBroker().send, **kwargs)  # type: ignore[arg-type]


def test_marks_a_round_only_after_every_ack_and_in_batches_of_the_configured_size() -> None:
    """Marks a round only after every ack and in batches of the configured size."""

    async def scenario() -> None:
        store, broker = FakeStore(5), FakeBroker()
        relay = OutboxRelay(store, broker.send, batch_size_max=3)  # type: ignore[arg-type]
        task = asyncio.create_task(relay.relay_once())
        await until(lambda: len(broker.acks) == 3)
        for fut in broker.acks[:2]:
            fut.set_result(None)
        for _ in range(20):
            await asyncio.sleep(0)
        assert store.marked == []  # one ack missing: nothing is marked
        broker.acks[2].set_result(None)
        assert await task == 3
        assert store.marked == [[1, 2, 3]] and store.limits == [3]
        # published in id order, with the dedupe key as a header
        assert [v for _, _, v, _ in broker.sent] == [b"v1", b"v2", b"v3"]
        assert broker.sent[0][3] == [("h", b"1"), ("dedupe_key", b"d1")]

    asyncio.run(scenario())


def test_an_unacknowledged_round_is_never_marked() -> None:
    """A send that fails (no ack) leaves its rows pending: they are re-sent (at least once)."""

    async def scenario() -> None:
        store = FakeStore(2)

        async def failing(*_: Any) -> Any:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            fut.set_exception(RuntimeError("broker down"))
            return fut

        relay = OutboxRelay(store, failing)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError):
            await relay.relay_once()
        assert store.marked == []

    asyncio.run(scenario())


def test_drain_relays_until_the_outbox_is_empty() -> None:
    """Drain relays until the outbox is empty."""

    async def scenario() -> None:
        store = FakeStore(7)

        async def acked(*_: Any) -> Any:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            fut.set_result(None)
            return fut

        relay = OutboxRelay(store, acked, batch_size_max=3)  # type: ignore[arg-type]
        assert await relay.drain() == 7
        assert store.marked == [[1, 2, 3], [4, 5, 6], [7]]

    asyncio.run(scenario())


def test_a_relay_without_the_lease_sends_nothing_this_round() -> None:
    """Another process holds the outbox lease: this relay skips the round, nothing is sent
    twice and nothing is marked."""
    store = FakeStore(3)
    store.leased = False
    broker = FakeBroker()
    relay = OutboxRelay(store, broker.send)  # type: ignore[arg-type]
    assert asyncio.run(relay.relay_once()) == 0
    assert broker.sent == [] and store.marked == []


# -- bundles: one outbox row, many messages -----------------------------------------------------


class BundleStore(FakeStore):
    """Rows: a plain message, a bundle of three, another plain message."""

    def __init__(self) -> None:
        super().__init__(0)
        value = bundle_row(
            "points.ledger",
            [("ann", {"n": 1}, "d-a1"), ("bob", {"n": 2}, "d-b1"), ("ann", {"n": 3}, "d-a2")],
        )["message_value"]
        self.rows = [
            OutboxMessage(1, "points.ledger", b"zed", b'{"n":0}', {"h": "1"}, "d0"),
            OutboxBundle(2, "points.ledger", value),  # type: ignore[list-item]
            OutboxMessage(3, "points.ledger", b"ann", b'{"n":4}', {"h": "1"}, "d4"),
        ]


def test_a_bundle_goes_out_through_send_many_in_order_between_the_rows_around_it() -> None:
    """Each bundled message keeps its key, value and own dedupe_key; the round's order of rows
    is the order of sending, and every row is marked once all were acknowledged."""

    async def scenario() -> None:
        store, broker = BundleStore(), FakeBroker()
        calls: list[str] = []
        bulk: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []

        async def send(*args: Any) -> Any:
            calls.append("send")
            return await broker.send(*args)

        async def send_many(topic: str, messages: list[Any]) -> list[Any]:
            calls.append("send_many")
            bulk.extend(messages)
            return [asyncio.sleep(0)]

        relay = OutboxRelay(store, send, send_many=send_many)  # type: ignore[arg-type]
        task = asyncio.ensure_future(relay.relay_once())
        await until(lambda: len(calls) == 3)  # every row sent; two acks awaited
        for ack in broker.acks:
            ack.set_result(None)
        assert await task == 5
        assert calls == ["send", "send_many", "send"]
        assert [(k, v) for k, v, _ in bulk] == [
            (b"ann", b'{"n":1}'),
            (b"bob", b'{"n":2}'),
            (b"ann", b'{"n":3}'),
        ]
        assert dict(bulk[0][2]) == {
            "content-type": b"application/json",
            "dedupe_key": b"d-a1",
        }
        assert store.marked == [[1, 2, 3]]

    asyncio.run(scenario())


def test_without_send_many_a_bundle_goes_out_one_message_at_a_time() -> None:
    async def scenario() -> None:
        store, broker = BundleStore(), FakeBroker()
        relay = OutboxRelay(store, broker.send)  # type: ignore[arg-type]
        task = asyncio.ensure_future(relay.relay_once())
        await until(lambda: len(broker.acks) == 5)  # every message sent, none acknowledged
        for ack in broker.acks:
            ack.set_result(None)
        assert await task == 5
        assert [(k, v) for _, k, v, _ in broker.sent] == [
            (b"zed", b'{"n":0}'),
            (b"ann", b'{"n":1}'),
            (b"bob", b'{"n":2}'),
            (b"ann", b'{"n":3}'),
            (b"ann", b'{"n":4}'),
        ]
        assert dict(broker.sent[2][3])["dedupe_key"] == b"d-b1"

    asyncio.run(scenario())


class FakeBatch:
    def __init__(self, room: int) -> None:
        self.room, self.records = room, []  # type: ignore[var-annotated]

    def append(self, *, key: bytes, value: bytes, timestamp: None, headers: Any) -> Any:
        if len(self.records) >= self.room or len(value) > 100:
            return None
        self.records.append((key, value))
        return object()


class FakeProducer:
    """A producer whose batches hold two records, partitioned by the key's first byte."""

    def __init__(self) -> None:
        self.queued: list[tuple[int, list[tuple[bytes, bytes]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def _partitioner(self, key: bytes, partitions: list[int], available: list[int]) -> int:
        return key[0] % len(partitions)

    def create_batch(self) -> FakeBatch:
        return FakeBatch(room=2)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> str:
        self.queued.append((partition, batch.records))
        return "future"

    async def send(
        self, topic: str, value: bytes, *, key: bytes, partition: int, headers: Any
    ) -> str:
        self.queued.append((partition, [(key, value)]))
        return "future"


def test_send_in_batches_keeps_each_partitions_order_and_uses_the_producers_partitioner() -> None:
    """Messages of a partition are queued in order, two per batch here; a message too big for
    any batch goes alone through send(); one future per queued batch or message."""

    async def scenario() -> None:
        producer = FakeProducer()
        big = b"x" * 200
        messages: list[tuple[bytes, bytes, Headers]] = [
            (bytes([k]), v, [])
            for k, v in [(0, b"a"), (1, b"b"), (0, b"c"), (0, b"d"), (0, big), (1, b"e"), (0, b"f")]
        ]
        futures = await send_in_batches(producer, "t", messages)
        per_partition: dict[int, list[bytes]] = {}
        for partition, records in producer.queued:
            per_partition.setdefault(partition, []).extend(v for _, v in records)
        assert per_partition == {0: [b"a", b"c", b"d", big, b"f"], 1: [b"b", b"e"]}
        assert len(futures) == len(producer.queued)

    asyncio.run(scenario())


class CountingProducer(FakeProducer):
    """A FakeProducer that counts partitioner calls and can grow its topic."""

    def __init__(self) -> None:
        super().__init__()
        self.partitioner_calls = 0
        self.partition_ids = {0, 1, 2}

    async def partitions_for(self, topic: str) -> set[int]:
        return self.partition_ids

    def _partitioner(self, key: bytes, partitions: list[int], available: list[int]) -> int:
        self.partitioner_calls += 1
        return key[0] % len(partitions)


def test_partition_memo_asks_the_partitioner_once_per_key_until_the_partitions_change() -> None:
    """A key seen in an earlier round is not hashed again (murmur2 is pure Python in aiokafka);
    when the topic gains partitions every key is asked again, since its partition may move."""

    async def scenario() -> None:
        producer = CountingProducer()
        memo = PartitionMemo()
        round_one: list[tuple[bytes, bytes, Headers]] = [
            (bytes([k]), b"v", []) for k in (1, 2, 1, 5)
        ]
        await send_in_batches(producer, "t", round_one, memo)
        assert producer.partitioner_calls == 3  # keys 1, 2, 5

        await send_in_batches(producer, "t", round_one, memo)
        assert producer.partitioner_calls == 3

        producer.partition_ids = {0, 1, 2, 3}
        producer.queued.clear()
        await send_in_batches(producer, "t", [(bytes([5]), b"w", [])], memo)
        assert producer.partitioner_calls == 4
        assert producer.queued == [(1, [(bytes([5]), b"w")])]  # 5 % 4, not the old 5 % 3

    asyncio.run(scenario())
