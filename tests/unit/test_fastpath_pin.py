"""streams/fastpath.py overrides a private faust method; pin the code it was checked against."""

from __future__ import annotations

import hashlib
import inspect
from importlib.metadata import version

import pytest
from faust.transport.consumer import Consumer

from streams.fastpath import FAUST_VERSION_PINNED, BatchConsumer, BatchingApp, BatchTransport

# sha256 of faust 0.15.3's Consumer._drain_messages source, which BatchConsumer mirrors.
UPSTREAM_DRAIN_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def test_installed_faust_is_the_version_the_batch_path_was_checked_against() -> None:
    """Upgrading faust must fail here until fastpath.py is re-read against the new drain loop."""
    assert version("faust-streaming") == FAUST_VERSION_PINNED
    source = inspect.getsource(Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == UPSTREAM_DRAIN_SHA256


def test_the_relay_can_reach_fausts_aiokafka_producer() -> None:
    """streams/relay.py sends bundles as record batches on faust's own aiokafka producer,
    which faust 0.15.3 keeps behind a private accessor."""
    from faust.transport.drivers.aiokafka import Producer

    assert callable(Producer._ensure_producer)


def test_a_batching_app_uses_the_batch_consumer() -> None:
    """The override is wired through the transport, so faust builds our consumer."""
    assert BatchTransport.Consumer is BatchConsumer
    app = BatchingApp("pin-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    assert isinstance(app.transport, BatchTransport)


def test_a_topic_can_have_only_one_batch_agent() -> None:
    """Two handlers for one topic would split its batches unpredictably: refuse at startup."""
    app = BatchingApp("pin-test-2", broker="kafka://127.0.0.1:1", web_enabled=False)
    topic = app.topic("some.topic", value_serializer="raw")

    async def handler(messages: object) -> None:
        return None

    app.batch_agent(topic)(handler)
    with pytest.raises(ValueError, match="already has a batch agent"):
        app.batch_agent(topic)(handler)
