"""Create the exchange's topics explicitly, with the configured partition count.

faust creates only its internal topics; a source topic left to broker auto-creation would get
the broker's default partition count and faust would refuse to start (PartitionsMismatch).

Creation is checked: the broker answers a create request with an error per topic (an invalid
name, a replication factor the cluster cannot hold, ...) rather than failing the request, so
each answer is read, and afterwards every required topic is described. A worker never runs on
topics that do not exist (it would consume nothing, forever) or have fewer partitions than
configured: :class:`TopicsUnusable` names each such topic and why, and the entry points leave
with one line and :data:`EXIT_TOPICS_UNUSABLE` (78, EX_CONFIG: restarting will not help,
the configuration or the cluster must change).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, for_code

from points.settings import Settings
from streams import kafka_clients
from streams.runtime import OutageWatch, give_up

__all__ = [
    "EXIT_TOPICS_UNUSABLE",
    "TopicsUnusable",
    "ensure_topics",
    "ensure_topics_or_exit",
    "ensure_topics_sync",
]

log = logging.getLogger(__name__)

#: EX_CONFIG: a required topic is missing or too small, and a restart would not change that.
EXIT_TOPICS_UNUSABLE = 78

_TOPIC_ALREADY_EXISTS = 36


class TopicsUnusable(Exception):
    """Required topics that do not exist, or have fewer partitions than configured."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
        super().__init__(f"required Kafka topics are not usable: {listed}")


async def ensure_topics(settings: Settings, extra: list[str] | None = None) -> list[str]:
    """Create every missing topic; return the names that were created. Raises
    :class:`TopicsUnusable` when a required topic is not there afterwards, or is too small."""
    topics = settings.kafka.topics
    wanted = topics.source_topics() + topics.output_topics() + list(extra or [])
    admin = kafka_clients.admin_client(settings.kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if not missing:
            await _check_topics(admin, wanted, settings.kafka.topic_partitions, {})
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
        refused: dict[str, str] = {}
        with contextlib.suppress(TopicAlreadyExistsError):
            refused = _refusals((await admin.create_topics(new)).topic_errors)
        created = [name for name in missing if name not in refused]
        if created:
            await _wait_for_leaders(admin, created)
        await _check_topics(admin, wanted, settings.kafka.topic_partitions, refused)
        return created
    finally:
        await admin.close()


def _refusals(topic_errors: Iterable[Any]) -> dict[str, str]:
    """The broker's per-topic answers to a create request: name -> why, for the refused ones
    (one that another worker created meanwhile is not refused)."""
    refused = {}
    for name, code, message, *_ in topic_errors:
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            refused[name] = f"creation refused ({for_code(code).__name__}: {message})"
    return refused


async def _check_topics(
    admin: AIOKafkaAdminClient, names: list[str], partitions: int, refused: dict[str, str]
) -> None:
    """Raise :class:`TopicsUnusable` unless every topic of ``names`` exists with at least
    ``partitions`` partitions; ``refused`` says why a creation failed, when it did."""
    problems: dict[str, str] = {}
    for topic in await admin.describe_topics(names):
        name, code = topic["topic"], topic["error_code"]
        if code != 0:
            problems[name] = refused.get(name) or f"does not exist ({for_code(code).__name__})"
        elif len(topic["partitions"]) < partitions:
            problems[name] = (
                f"{len(topic['partitions'])} partitions, fewer than the {partitions} configured"
                " (POINTS_KAFKA__TOPIC_PARTITIONS)"
            )
    if problems:
        raise TopicsUnusable(problems)


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


def ensure_topics_or_exit(settings: Settings, extra: list[str] | None = None) -> list[str]:
    """For the workers' start-up: :func:`ensure_topics_sync`, or one CRITICAL line and exit
    :data:`EXIT_TOPICS_UNUSABLE` when the topics cannot be used. A broker that cannot be
    reached is waited for like a database outage (then exit 75, streams/runtime.py)."""
    broker = OutageWatch("the broker (to check the topics)", settings.worker.db_outage_tolerance_s)
    while True:
        try:
            created = ensure_topics_sync(settings, extra)
            break
        except TopicsUnusable as exc:
            log.critical("%s; exiting with code %d", exc, EXIT_TOPICS_UNUSABLE)
            sys.exit(EXIT_TOPICS_UNUSABLE)
        except KafkaConnectionError as exc:
            if broker.failed(exc):
                give_up(f"waited {broker.waited_s():.1f} s for {broker.awaited}", sys.exit)
            time.sleep(broker.next_delay_s())
    broker.recovered()
    if created:
        log.info("created topics: %s", ", ".join(created))
    return created
