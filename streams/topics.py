"""Create the exchange's topics explicitly, with the configured partition count.

faust creates only its internal topics; a source topic left to broker auto-creation would get
the broker's default partition count and faust would refuse to start (PartitionsMismatch).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from points.settings import Settings

__all__ = ["ensure_topics", "ensure_topics_sync"]


async def ensure_topics(settings: Settings, extra: list[str] | None = None) -> list[str]:
    """Create every missing topic; return the names that were created."""
    topics = settings.kafka.topics
    wanted = topics.source_topics() + topics.output_topics() + list(extra or [])
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                name=name,
                num_partitions=settings.kafka.topic_partitions,
                replication_factor=1 if _single_node(settings) else 3,
                topic_configs=_configs_for(settings, name),
            )
            for name in missing
        ]
        # Another worker may create the same topic between our list and our create.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
        await _wait_for_leaders(admin, missing)
        return missing
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 15.0
) -> None:
    """Return once every partition of ``names`` has a leader: producing to a topic whose
    leaders are still being elected fails with NotLeaderForPartition retries."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(names)
        if all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        await asyncio.sleep(0.1)


def _single_node(settings: Settings) -> bool:
    return len(settings.kafka.bootstrap_servers.split(",")) == 1


def _configs_for(settings: Settings, name: str) -> dict[str, str]:
    if name == settings.kafka.topics.bank_customers:
        # Profiles: only the latest per customer matters.
        return {"cleanup.policy": "compact"}
    return {}


def ensure_topics_sync(settings: Settings, extra: list[str] | None = None) -> list[str]:
    return asyncio.run(ensure_topics(settings, extra))
