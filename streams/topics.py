"""Create the exchange's topics explicitly, with the configured partitions and replication.

faust creates only its internal topics; a source topic left to broker auto-creation would get
the broker's default partition count and faust would refuse to start (PartitionsMismatch).

Replication is explicit (:class:`Replication`): ``POINTS_KAFKA__REPLICATION_FACTOR`` and
``POINTS_KAFKA__MIN_INSYNC_REPLICAS``, or, unset, chosen from the brokers the cluster reports
(describe_cluster) -- never from the bootstrap string, which may name one DNS alias of a large
cluster. Every topic the exchange creates gets them, faust's assignor leader topic included
(created here before faust would, with ``topic_replication_factor`` set for any other).

Creation is checked: the broker answers a create request with an error per topic (an invalid
name, a replication factor the cluster cannot hold, ...) rather than failing the request, so
each answer is read, and afterwards every required topic is described. A worker never runs on
topics that do not exist (it would consume nothing, forever), have fewer partitions than
configured, or fewer replicas than the replication factor (unless
``POINTS_KAFKA__ACCEPT_LOWER_REPLICATION`` says to): :class:`TopicsUnusable` names each such
topic and why, and the entry points leave with one line and :data:`EXIT_TOPICS_UNUSABLE` (78,
EX_CONFIG: restarting will not help, the configuration or the cluster must change).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, for_code

from points.settings import KafkaSettings, Settings
from streams import kafka_clients
from streams.runtime import OutageWatch, give_up

__all__ = [
    "EXIT_TOPICS_UNUSABLE",
    "Replication",
    "TopicsUnusable",
    "create_topics",
    "ensure_topics",
    "ensure_topics_or_exit",
    "ensure_topics_sync",
    "prepare_topics",
]

log = logging.getLogger(__name__)

#: EX_CONFIG: a required topic is missing or too small, and a restart would not change that.
EXIT_TOPICS_UNUSABLE = 78

_TOPIC_ALREADY_EXISTS = 36


class TopicsUnusable(Exception):
    """Required topics that do not exist, have fewer partitions than configured, or fewer
    replicas than the replication factor; or a replication the cluster cannot hold."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
        super().__init__(f"required Kafka topics are not usable: {listed}")


#: Replicas asked for when nothing is configured, if the cluster has that many brokers.
DEFAULT_REPLICATION_FACTOR = 3


@dataclass(frozen=True)
class Replication:
    """Replicas per partition and ``min.insync.replicas`` of the topics the exchange creates.

    With producers on ``acks=all`` and idempotence, a write is acknowledged once
    ``min_insync`` replicas have it: RF 3 / min.insync 2 loses no acknowledged write when one
    broker dies, and keeps accepting writes while one is down (docs/operations.md)."""

    factor: int
    min_insync: int

    @classmethod
    def for_cluster(cls, kafka: KafkaSettings, brokers: int) -> Replication:
        """The configured replication, or the default for ``brokers`` live brokers. Raises
        :class:`TopicsUnusable` when the configured factor is more than the cluster holds."""
        factor = kafka.replication_factor or max(1, min(brokers, DEFAULT_REPLICATION_FACTOR))
        if factor > brokers:
            raise TopicsUnusable({
                "(replication)": f"POINTS_KAFKA__REPLICATION_FACTOR {factor} is more than the "
                f"{brokers} broker(s) the cluster reports",
            })  # fmt: skip
        min_insync = kafka.min_insync_replicas or (2 if factor >= 3 else 1)
        if min_insync > factor:
            raise TopicsUnusable({
                "(replication)": f"POINTS_KAFKA__MIN_INSYNC_REPLICAS {min_insync} is more than "
                f"the replication factor {factor}",
            })  # fmt: skip
        return cls(factor, min_insync)


def leader_topic(app_id: str) -> str:
    """faust's assignor topic (``<app id>-__assignor-__leader``, one partition): created here
    with our replication instead of faust's default of one replica."""
    return f"{app_id}-__assignor-__leader"


async def ensure_topics(
    settings: Settings, extra: list[str] | None = None, *, app_id: str | None = None
) -> list[str]:
    """Create every missing topic of the exchange (and ``extra``, and the leader topic of
    faust app ``app_id``, default POINTS_WORKER__APP_ID); return the names created. Raises
    :class:`TopicsUnusable` when a required topic is not usable afterwards."""
    return (await prepare_topics(settings, extra, app_id=app_id))[0]


async def prepare_topics(
    settings: Settings, extra: list[str] | None = None, *, app_id: str | None = None
) -> tuple[list[str], Replication]:
    """:func:`ensure_topics`, also returning the replication the topics were created with."""
    topics = settings.kafka.topics
    partitions = settings.kafka.topic_partitions
    wanted = dict.fromkeys(topics.source_topics() + topics.output_topics() + list(extra or []),
                           partitions)  # fmt: skip
    wanted[leader_topic(app_id or settings.worker.app_id)] = 1
    configs = {topics.bank_customers: {"cleanup.policy": "compact"}}  # latest profile counts
    return await create_topics(settings.kafka, wanted, configs)


async def create_topics(
    kafka: KafkaSettings,
    wanted: Mapping[str, int],
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[list[str], Replication]:
    """Create the missing topics of ``wanted`` (name -> partitions) with the cluster's
    :class:`Replication` and ``configs`` per name; check all of them. Returns the names created
    and the replication. Raises :class:`TopicsUnusable`."""
    # A topic just created on a multi-broker cluster may be missing from the answering broker's
    # metadata for a moment (seen on the secured 3-broker cluster under load): a topic that
    # "does not exist" after a create that was not refused gets another create and check.
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            return await _create_and_check(kafka, wanted, configs)
        except TopicsUnusable as unusable:
            problems = unusable.problems.values()
            only_missing = all(why.startswith("does not exist") for why in problems)
            if not only_missing or attempt == _CREATE_ATTEMPTS - 1:
                raise
            log.warning("%s; creating and checking again", unusable)
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable: the last attempt returns or raises")


_CREATE_ATTEMPTS = 5


async def _create_and_check(
    kafka: KafkaSettings,
    wanted: Mapping[str, int],
    configs: Mapping[str, Mapping[str, str]] | None,
) -> tuple[list[str], Replication]:
    admin = kafka_clients.admin_client(kafka)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        replication = Replication.for_cluster(kafka, len(cluster.get("brokers") or []))
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        refused: dict[str, str] = {}
        if missing:
            new = [
                NewTopic(
                    name=name,
                    num_partitions=wanted[name],
                    replication_factor=replication.factor,
                    topic_configs={
                        "min.insync.replicas": str(replication.min_insync),
                        **(configs or {}).get(name, {}),
                    },
                )
                for name in missing
            ]
            # Another worker may create the same topic between our list and our create.
            with contextlib.suppress(TopicAlreadyExistsError):
                refused = _refusals((await admin.create_topics(new)).topic_errors)
        created = [name for name in missing if name not in refused]
        if created:
            await _wait_for_leaders(admin, created)
        await _check_topics(admin, wanted, replication, kafka.accept_lower_replication, refused)
        return created, replication
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
    admin: AIOKafkaAdminClient,
    wanted: Mapping[str, int],
    replication: Replication,
    accept_lower_replication: bool,
    refused: dict[str, str],
) -> None:
    """Raise :class:`TopicsUnusable` unless every topic of ``wanted`` exists with at least its
    partitions and ``replication.factor`` replicas (fewer replicas only warn when accepted);
    ``refused`` says why a creation failed, when it did."""
    problems: dict[str, str] = {}
    for topic in await admin.describe_topics(list(wanted)):
        name, code = topic["topic"], topic["error_code"]
        if code != 0:
            problems[name] = refused.get(name) or f"does not exist ({for_code(code).__name__})"
            continue
        if len(topic["partitions"]) < wanted[name]:
            problems[name] = (
                f"{len(topic['partitions'])} partitions, fewer than the {wanted[name]} configured"
                " (POINTS_KAFKA__TOPIC_PARTITIONS)"
            )
            continue
        replicas = min(len(p["replicas"]) for p in topic["partitions"])
        if replicas < replication.factor:
            why = (
                f"replication factor {replicas}, below the {replication.factor} configured"
                " (POINTS_KAFKA__REPLICATION_FACTOR, default from the broker count)"
            )
            if accept_lower_replication:
                log.warning("%s: %s; running anyway (POINTS_KAFKA__ACCEPT_LOWER_REPLICATION)",
                            name, why)  # fmt: skip
            else:
                problems[name] = why + "; POINTS_KAFKA__ACCEPT_LOWER_REPLICATION=true runs anyway"
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


def ensure_topics_sync(
    settings: Settings, extra: list[str] | None = None, *, app_id: str | None = None
) -> list[str]:
    return asyncio.run(ensure_topics(settings, extra, app_id=app_id))


def ensure_topics_or_exit(
    settings: Settings, extra: list[str] | None = None, *, app_id: str | None = None
) -> Settings:
    """For the workers' start-up: :func:`prepare_topics`, or one CRITICAL line and exit
    :data:`EXIT_TOPICS_UNUSABLE` when the topics cannot be used. A broker that cannot be
    reached is waited for like a database outage (then exit 75, streams/runtime.py).

    Returns ``settings`` with the replication resolved (``kafka.replication_factor`` and
    ``min_insync_replicas`` set), for the faust app's internal topics."""
    broker = OutageWatch("the broker (to check the topics)", settings.worker.db_outage_tolerance_s)
    while True:
        try:
            created, replication = asyncio.run(prepare_topics(settings, extra, app_id=app_id))
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
        log.info("created topics (replication factor %d, min.insync.replicas %d): %s",
                 replication.factor, replication.min_insync, ", ".join(created))  # fmt: skip
    kafka = settings.kafka.model_copy(update={
        "replication_factor": replication.factor,
        "min_insync_replicas": replication.min_insync,
    })  # fmt: skip
    return settings.model_copy(update={"kafka": kafka})
