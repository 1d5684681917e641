"""Lanes of the batch path (streams/fastpath.py), with a stand-in for faust's consumer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from streams.fastpath import BatchConsumer


@dataclass(eq=False)
class Msg:
    partition: int
    offset: int


@dataclass
class FakeConsumer:
    """What a lane uses of faust's consumer: tracking, acks, crash."""

    lanes: int
    size: int = 1000
    depth: int = 2
    tracked: list[Msg] = field(default_factory=list)
    acked: list[Msg] = field(default_factory=list)
    crashed: list[BaseException] = field(default_factory=list)
    _batch_lanes: Any = None

    @property
    def app(self) -> Any:
        return SimpleNamespace(
            batch_lanes=self.lanes, batch_size_max=self.size, lane_depth=self.depth
        )

    def track_message(self, m: Msg) -> None:
        self.tracked.append(m)

    def ack(self, m: Msg) -> None:
        self.acked.append(m)

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)

    async def dispatch(self, handler: Any, messages: list[Msg]) -> None:
        await BatchConsumer._dispatch(self, handler, messages)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_each_partition_goes_to_one_lane_in_order_and_is_acked_after_its_batch() -> None:
    """Partition p goes to lane p % 2, in batches of at most batch_size_max; each message is
    tracked when queued and acked only after the handler returned for its batch."""
    consumer = FakeConsumer(lanes=2, size=2)
    calls: list[list[tuple[int, int]]] = []

    async def handler(batch: list[Msg]) -> None:
        calls.append([(m.partition, m.offset) for m in batch])
        assert not any(m in consumer.acked for m in batch)  # acked only after we return

    fetched = [Msg(p, o) for o, p in enumerate([0, 1, 2, 3, 0, 2])]
    await consumer.dispatch(handler, fetched)
    await settle()
    # lanes interleave with each other, so compare as a set of batches ...
    assert sorted(calls) == [[(0, 0), (2, 2)], [(0, 4), (2, 5)], [(1, 1), (3, 3)]]
    lane0 = [c for c in calls if c[0][0] in (0, 2)]
    assert lane0 == [[(0, 0), (2, 2)], [(0, 4), (2, 5)]]  # a lane's batches keep their order
    assert set(map(id, consumer.acked)) == set(map(id, fetched))
    assert len(consumer.tracked) == len(fetched)


async def test_two_lanes_run_at_the_same_time() -> None:
    """While one lane's batch waits (for the database), the other lane's batch runs."""
    consumer = FakeConsumer(lanes=2)
    release = asyncio.Event()
    started: list[int] = []

    async def handler(batch: list[Msg]) -> None:
        started.append(batch[0].partition)
        if batch[0].partition == 0:
            await release.wait()

    await consumer.dispatch(handler, [Msg(0, 0), Msg(1, 1)])
    await settle()
    assert sorted(started) == [0, 1]
    assert [m.partition for m in consumer.acked] == [1]  # lane 0 still waiting
    release.set()
    await settle()
    assert sorted(m.partition for m in consumer.acked) == [0, 1]


async def test_a_failed_batch_is_not_acked_and_crashes_the_consumer() -> None:
    consumer = FakeConsumer(lanes=1)

    async def handler(batch: list[Msg]) -> None:
        raise RuntimeError("database down")

    await consumer.dispatch(handler, [Msg(0, 0), Msg(0, 1)])
    await settle()
    assert consumer.acked == []
    assert [str(e) for e in consumer.crashed] == ["database down"]


async def test_a_busy_lane_takes_what_queued_behind_it_as_one_batch_up_to_the_size() -> None:
    """Small fetches that queue while the lane works are handled together (one transaction),
    never more than batch_size_max at once, and still in order."""
    consumer = FakeConsumer(lanes=1, size=3, depth=4)
    release = asyncio.Event()
    calls: list[list[int]] = []

    async def handler(batch: list[Msg]) -> None:
        calls.append([m.offset for m in batch])
        if len(calls) == 1:
            await release.wait()

    await consumer.dispatch(handler, [Msg(0, 0)])
    await settle()
    for offset in (1, 2, 3, 4):
        await consumer.dispatch(handler, [Msg(0, offset)])
    release.set()
    await settle()
    assert calls == [[0], [1, 2, 3], [4]]
    assert [m.offset for m in consumer.acked] == [0, 1, 2, 3, 4]
