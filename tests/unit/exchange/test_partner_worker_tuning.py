"""Worker latency tuning (streams/fastpath.py, streams/partner_worker.py) is really applied."""

from __future__ import annotations

import inspect

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher

from points.settings import load_settings
from streams import partner_worker as pw
from streams.app import create_app
from streams.fastpath import BatchConsumer, BatchConsumerThread, BatchTransport


def test_every_worker_app_builds_its_consumer_with_the_short_fetch_wait() -> None:
    """Both workers' apps carry the configured fetch wait into their consumer thread."""
    app = create_app(load_settings())
    assert isinstance(app.transport, BatchTransport)
    assert app.transport.Consumer is BatchConsumer
    assert app.fetch_max_wait_ms == load_settings().worker.fetch_max_wait_ms <= 100


def test_aiokafka_still_reads_the_attribute_the_worker_overrides() -> None:
    """The override sets ``AIOKafkaConsumer._fetch_max_wait_ms`` after construction; the
    consumer must still hand that attribute to its Fetcher when it starts."""
    assert "self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.__init__)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        AIOKafkaConsumer.start)
    assert "fetch_max_wait_ms" in inspect.signature(Fetcher.__init__).parameters
    assert "_create_worker_consumer" in dict(inspect.getmembers(BatchConsumerThread.__mro__[1]))


def test_the_partner_relay_is_tuned_for_latency() -> None:
    """The partner worker relays often and in big rounds: three messages per swap."""
    assert pw.RELAY_INTERVAL_S <= 0.05 and pw.RELAY_BATCH_SIZE_MAX >= 1000
