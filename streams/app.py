"""Build the faust application from Settings. Nothing is created at import time."""

from __future__ import annotations

from points.settings import Settings
from streams.fastpath import BatchingApp
from streams.kafka_clients import faust_broker_settings

__all__ = ["create_app"]


def create_app(settings: Settings, *, batch_lanes: int = 1) -> BatchingApp:
    worker = settings.worker
    return BatchingApp(
        worker.app_id,
        batch_size_max=worker.batch_size_max,
        fetch_max_wait_ms=worker.fetch_max_wait_ms,
        batch_lanes=batch_lanes,
        # The bootstrap list and the security settings (POINTS_KAFKA__*): its consumer, its
        # producer (the outbox relay's) and its topic creation all connect with them.
        **faust_broker_settings(settings.kafka),
        # No faust tables: all state lives in the ledger database, written in the same
        # transaction as the points it explains. So no changelogs and no recovery to stall.
        store="memory://",
        topic_partitions=settings.kafka.topic_partitions,
        # Replicas of faust's own topics (its assignor leader topic, created beforehand by
        # streams/topics.py with min.insync.replicas): the resolved replication factor.
        topic_replication_factor=settings.kafka.replication_factor or 1,
        web_enabled=worker.web_enabled,
        web_port=worker.web_port,
        web_host="127.0.0.1",
        # At-least-once from Kafka, made exactly-once in effect by the database (see docs).
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=worker.commit_interval_ms / 1000,
        broker_commit_every=worker.batch_size_max,
        broker_max_poll_records=worker.batch_size_max * 4,
        broker_session_timeout=worker.session_timeout_ms / 1000,
        broker_heartbeat_interval=min(3.0, worker.session_timeout_ms / 3000),
        producer_acks=-1,
        stream_buffer_maxsize=max(4096, worker.batch_size_max * 2),
    )
