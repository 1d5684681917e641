"""Batches compressed by a librdkafka producer, in every codec Kafka supports, are processed.

Issue 12 finding 1: a core-banking producer on confluent-kafka with ``compression.type=lz4``
crashed both workers (``UnsupportedCodecError``) and every restart crashed on the same batch.
"""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer
from sqlalchemy import select

from points.db import make_engine
from points.ledger.tables import entries
from tests.integration.streams.support import StreamEnv, Worker, encode, purchase, wait_until

CODECS = ("gzip", "snappy", "lz4", "zstd")


def produce_compressed(
    bootstrap: str, topic: str, codec: str, events: list[dict[str, object]]
) -> None:
    """One batch from librdkafka with the codec, idempotence on, as a bank's producer sends."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "enable.idempotence": True,
            "linger.ms": 50,
        }
    )
    for event in events:
        producer.produce(topic, key=str(event["customer_id"]).encode(), value=encode(event))
    assert producer.flush(30) == 0, f"{codec}: messages left unsent"


def earned_keys(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(entries.c.idempotency_key)).scalars())
    finally:
        engine.dispose()


def test_a_batch_in_each_codec_earns_its_points(stream_env: StreamEnv, tmp_path: Path) -> None:
    """Three purchases per codec (gzip, snappy, lz4, zstd), each codec's batch sent by
    confluent-kafka: the running earning worker posts an earn entry for all twelve and keeps
    running (it exits 0 on stop)."""
    topic = stream_env.topic("bank_transactions")
    expected: set[str] = set()
    for codec in CODECS:
        batch = [purchase(f"{codec}-{n}", f"cust-{codec}-{n}", 10_000) for n in range(3)]
        produce_compressed(stream_env.bootstrap, topic, codec, batch)
        expected |= {f"earn:{e['event_id']}" for e in batch}
    worker = Worker(stream_env, tmp_path / "worker.log").start()
    try:
        wait_until(
            lambda: expected <= earned_keys(stream_env.database_url),
            90,
            "an earn entry for every compressed purchase",
            worker.log_tail,
        )
    finally:
        assert worker.stop() == 0, worker.log_tail()
