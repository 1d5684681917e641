"""Batch delivery for the hot input topics: the one place we override faust internals.

Why: faust 0.15.3 hands every message one by one through the conductor, the topic channel's
queue, the stream and its processors before ``take_events`` regroups them. Profiled here, that
per-message path costs more than our whole database batch (about 5,000 no-op messages/s on two
cores), while the consumer already fetches messages in batches. So for topics registered with
:meth:`BatchingApp.batch_agent`, the drain loop passes each fetched batch straight to the
handler. Every other topic (and faust's own internal topics) keeps faust's normal path.

What stays faust's: the consumer group, partition assignment and rebalancing, offset tracking
and commits (``Consumer.ack`` / ``Consumer.commit``), the producer, timers, the worker.

The contract that keeps points exactly once: a batch handler must commit its database
transaction before it returns; only then does :func:`_deliver` ack the batch's messages, and
only acked offsets are ever committed. If the handler raises, nothing is acked and the error
propagates (the worker crashes and a restart replays the batch, which the ledger's inbox makes
harmless). Pinned to faust-streaming 0.15.3: ``_drain_messages`` is a private method, so
``tests/unit/test_fastpath_pin.py`` fails on any other version until this module is re-checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import Message

__all__ = ["FAUST_VERSION_PINNED", "BatchHandler", "BatchingApp"]

FAUST_VERSION_PINNED = "0.15.3"

BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]


class BatchConsumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer, with whole-batch delivery for registered topics."""

    def _new_consumer_thread(self) -> Any:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
                    await _deliver(self, batch_handler, messages)
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


async def _deliver(consumer: BatchConsumer, handler: BatchHandler, messages: list[Message]) -> None:
    size = cast(BatchingApp, consumer.app).batch_size_max
    for start in range(0, len(messages), size):
        chunk = messages[start : start + size]
        for message in chunk:
            # In flight until acked: a rebalance waits for these (Consumer.wait_empty).
            consumer.track_message(message)
        await handler(chunk)
        for message in chunk:
            consumer.ack(message)


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


class BatchTransport(aiokafka_driver.Transport):
    Consumer = BatchConsumer


class BatchingApp(faust.App):
    """A faust App whose hot topics are consumed in whole fetched batches."""

    def __init__(
        self, *args: Any, batch_size_max: int = 1000, fetch_max_wait_ms: int = 50, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.batch_handlers: dict[str, BatchHandler] = {}
        # A fetch can return tens of thousands of messages; handlers get at most this many.
        self.batch_size_max = batch_size_max
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    def batch_agent(self, *topics: faust.TopicT) -> Callable[[BatchHandler], BatchHandler]:
        """Register ``handler(messages)`` for every batch fetched from ``topics``.

        Messages of one partition arrive in offset order; a batch may mix partitions and,
        when the handler has several topics, topics.
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

