"""A consumer group's lag, read from Kafka: the dashboard's :class:`ConsumerLagReader`
(:mod:`points.ops_metrics`), built by the API at start-up (:func:`points.api.app.create_app`).

It lives here, beside the other Kafka code, because ``points/`` knows nothing of Kafka.
aiokafka is imported on the first probe, not when the API starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from points.settings import KafkaSettings
from streams import kafka_clients

__all__ = ["KafkaConsumerLag", "consumer_lag"]


class KafkaConsumerLag:
    """:class:`points.ops_metrics.ConsumerLagReader` over the brokers of ``kafka`` (with its
    security settings: on a secured cluster, a principal allowed to describe the groups)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka

    async def lag(self, group_id: str, *, timeout_s: float) -> dict[str, Any]:
        return await consumer_lag(self.kafka, group_id, timeout_s=timeout_s)


async def consumer_lag(
    kafka: KafkaSettings, group_id: str, *, timeout_s: float = 3.0
) -> dict[str, Any]:
    """The group's lag per topic: end offsets minus committed offsets, summed over the
    partitions the group has committed. Raises when Kafka cannot be reached in time."""
    timeout_ms = int(timeout_s * 1000)
    admin = kafka_clients.admin_client(kafka, request_timeout_ms=timeout_ms,
                                       client_id="points-ops")
    consumer = kafka_clients.consumer(kafka, group_id=None, enable_auto_commit=False,
                                      request_timeout_ms=timeout_ms, client_id="points-ops")

    async def probe() -> dict[str, Any]:
        await admin.start()
        await consumer.start()
        committed = await admin.list_consumer_group_offsets(group_id)
        partitions = [tp for tp, meta in committed.items() if meta.offset >= 0]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        topics: dict[str, dict[str, int]] = {}
        for tp in sorted(partitions):
            end = int(ends.get(tp, 0))
            done = int(committed[tp].offset)
            row = topics.setdefault(tp.topic, {"lag": 0, "end": 0, "committed": 0,
                                               "partitions": 0})
            row["lag"] += max(end - done, 0)
            row["end"] += end
            row["committed"] += done
            row["partitions"] += 1
        return {"status": "ok", "group_id": group_id, "topics": topics,
                "total_lag": sum(t["lag"] for t in topics.values())}

    try:
        return await asyncio.wait_for(probe(), timeout=timeout_s)
    finally:
        # Best effort: the probe's answer (or its error) is what matters.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), timeout=timeout_s)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(admin.close(), timeout=timeout_s)
