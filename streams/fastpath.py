"""Batch delivery for the hot input topics: the one place we override faust internals.

Why: faust 0.15.3 hands every message one by one through the conductor, the topic channel's
queue, the stream and its processors before ``take_events`` regroups them. Profiled here, that
per-message path costs more than our whole database batch (about 5,000 no-op messages/s on two
cores), while the consumer already fetches messages in batches. So for topics registered with
:meth:`BatchingApp.batch_agent`, the drain loop passes each fetched batch straight to the
handler. Every other topic (and faust's own internal topics) keeps faust's normal path.

What stays faust's: the consumer group, partition assignment and rebalancing, offset tracking
and commits (``Consumer.ack`` / ``Consumer.commit``), the producer, timers, the worker.

Batches go through lanes (:class:`_Lane`): partition ``p`` of a handler's topics always goes to
lane ``p % batch_lanes``, each lane runs its batches one after another, and the lanes run side
by side while the consumer fetches ahead (a bounded queue per lane is the backpressure). So one
worker keeps its database busy from one lane while another evaluates rules, and a partition's
messages are still handled in offset order.

The contract that keeps points exactly once: a batch handler must commit its database
transaction before it returns; only then does its lane ack the batch's messages, and only
acked offsets are ever committed. If the handler raises, nothing is acked and the error
propagates (the worker crashes and a restart replays the batch, which the ledger's inbox makes
harmless). Pinned to faust-streaming 0.15.3: ``_drain_messages`` is a private method, so
``tests/unit/test_fastpath_pin.py`` fails on any other version until this module is re-checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import Message

__all__ = ["FAUST_VERSION_PINNED", "BatchHandler", "BatchingApp"]

FAUST_VERSION_PINNED = "0.15.3"

BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]


class BatchConsumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer, with whole-batch delivery for registered topics."""

    # (handler, lane number) -> its lane, made on first use
    _batch_lanes: dict[tuple[BatchHandler, int], _Lane] | None = None

    def _new_consumer_thread(self) -> Any:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _dispatch(self, handler: BatchHandler, messages: list[Message]) -> None:
        """Hand a fetched batch to the handler's lanes: partition ``p`` always goes to lane
        ``p % lanes`` (so one partition's messages stay in order), at most ``batch_size_max``
        messages per call."""
        app = cast(BatchingApp, self.app)
        lanes = app.batch_lanes
        by_lane: dict[int, list[Message]] = {}
        if lanes == 1:
            by_lane[0] = messages
        else:
            for message in messages:
                by_lane.setdefault(message.partition % lanes, []).append(message)
        lane_runners = self._batch_lanes
        if lane_runners is None:
            lane_runners = self._batch_lanes = {}
        size = app.batch_size_max
        for lane_no, lane_messages in by_lane.items():
            lane = lane_runners.get((handler, lane_no))
            if lane is None:
                lane = lane_runners[(handler, lane_no)] = _Lane(self, handler, app.lane_depth, size)
            for start in range(0, len(lane_messages), size):
                await lane.submit(lane_messages[start : start + size])

    async def on_stop(self) -> None:
        await super().on_stop()
        # Whatever is still queued was never acked: a restart replays it.
        for lane in (self._batch_lanes or {}).values():
            lane.cancel()

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - see tests
        # Mirrors faust 0.15.3's Consumer._drain_messages (read offsets, gaps, commit_every,
        # stop handling); differs only in grouping messages of batch topics.
        handlers: dict[str, BatchHandler] = cast(BatchingApp, self.app).batch_handlers
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag("CONSUMER_FETCHING")
                await self.sleep(0)
                # Keyed by handler: one handler registered for several topics (say transactions
                # and profiles) gets one batch per fetch, so one database transaction.
                batches: dict[BatchHandler, list[Message]] = {}
                if not self.should_stop:
                    async for tp, message in self.getmany(timeout=1.0):
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is not None and offset < r_offset:
                            continue  # already read (faust drops these the same way)
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        handler = handlers.get(tp.topic)
                        if handler is None:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        else:
                            batches.setdefault(handler, []).append(message)
                        set_read_offset(tp, offset)
                for batch_handler, messages in batches.items():
                    await self._dispatch(batch_handler, messages)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                self.diag.unset_flag("CONSUMER_FETCHING")
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag("CONSUMER_FETCHING")


class _Lane:
    """One lane of a batch handler: its batches run one after another, in the order fetched,
    while the other lanes' batches run beside them and the consumer fetches on.

    A message is tracked (a rebalance waits for it) from the moment it is queued, and acked
    only after the handler returned for its batch — so only committed work is ever acked, and
    offsets are committed per partition up to the first message not yet acked.
    """

    def __init__(
        self, consumer: BatchConsumer, handler: BatchHandler, depth: int, size_max: int
    ) -> None:
        self._consumer = consumer
        self._handler = handler
        self._size_max = size_max
        # Bounded: a full lane stops the drain loop from fetching more (backpressure).
        self._queue: asyncio.Queue[list[Message]] = asyncio.Queue(maxsize=depth)
        self.failure: BaseException | None = None
        self._task = asyncio.ensure_future(self._run())

    async def submit(self, messages: list[Message]) -> None:
        if self.failure is not None:
            raise self.failure
        consumer = self._consumer
        for message in messages:
            consumer.track_message(message)
        await self._queue.put(messages)

    async def _run(self) -> None:
        consumer, handler = self._consumer, self._handler
        queue, size_max = self._queue, self._size_max
        carried: list[Message] | None = None
        while True:
            messages = carried if carried is not None else await queue.get()
            carried = None
            # Take what else waits, up to the batch size: one transaction for several small
            # fetches (a quiet stream fetches often and little) keeps the lane from spending
            # its time on per-transaction costs while messages queue behind it.
            while not queue.empty():
                waiting = queue.get_nowait()
                if len(messages) + len(waiting) > size_max:
                    carried = waiting
                    break
                messages = messages + waiting
            try:
                await handler(messages)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                # Nothing of this batch (or anything queued after it) is acked: the worker
                # stops, and a restart replays from the last committed offsets.
                self.failure = exc
                await consumer.crash(exc)
                return
            for message in messages:
                consumer.ack(message)

    def cancel(self) -> None:
        self._task.cancel()


class BatchConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Applies the app's fetch wait: faust 0.15.3 passes ``fetch_max_wait_ms=1500`` to aiokafka
    and offers no setting. aiokafka keeps one fetch in flight per broker; while busy
    partitions still have buffered records, that fetch covers only the idle ones and the
    broker may hold it for the whole wait — so a message on a quiet partition could sit unread
    for up to 1.5 s even when the worker was idle (measured on the partner worker: reply lag
    p50 0.76 s at 456 swaps/s, 0.05 s with a 50 ms wait)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its Fetcher (pinned by
        # tests/unit/test_fastpath_pin.py).
        consumer._fetch_max_wait_ms = cast(BatchingApp, self.app).fetch_max_wait_ms
        return consumer


class IdempotentProducer(aiokafka_driver.Producer):
    """faust's producer with idempotence on (faust turns it on only inside transactions): a
    retried send after a lost acknowledgement is not written twice. With ``acks=all``
    (``producer_acks=-1``) and the topics' ``min.insync.replicas`` this is the durability
    docs/operations.md describes; consumers still drop repeats by ``dedupe_key``."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class BatchTransport(aiokafka_driver.Transport):
    Consumer = BatchConsumer
    Producer = IdempotentProducer


class BatchingApp(faust.App):
    """A faust App whose hot topics are consumed in whole fetched batches."""

    def __init__(
        self,
        *args: Any,
        batch_size_max: int = 1000,
        fetch_max_wait_ms: int = 50,
        batch_lanes: int = 1,
        lane_depth: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if batch_lanes < 1 or lane_depth < 1:
            raise ValueError("batch_lanes and lane_depth must be at least 1")
        self.batch_handlers: dict[str, BatchHandler] = {}
        # A fetch can return tens of thousands of messages; handlers get at most this many.
        self.batch_size_max = batch_size_max
        self.fetch_max_wait_ms = fetch_max_wait_ms
        # Calls of one handler that may run at once, each on its own partitions; and how many
        # batches may wait in each lane while the consumer fetches ahead.
        self.batch_lanes = batch_lanes
        self.lane_depth = lane_depth

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    def batch_agent(self, *topics: faust.TopicT) -> Callable[[BatchHandler], BatchHandler]:
        """Register ``handler(messages)`` for every batch fetched from ``topics``.

        Messages of one partition arrive in offset order; a batch may mix partitions and,
        when the handler has several topics, topics. With ``batch_lanes`` > 1 the handler
        runs concurrently for disjoint sets of partitions (partition ``p`` in lane
        ``p % batch_lanes``); each lane's calls are sequential.
        """

        def register(handler: BatchHandler) -> BatchHandler:
            for topic in topics:
                name = topic.get_topic_name()
                if name in self.batch_handlers:
                    raise ValueError(f"topic {name!r} already has a batch agent")
                self.batch_handlers[name] = handler
                # Subscribing through the conductor is what makes faust fetch the topic.
                self.topics.add(topic)
            return handler

        return register
