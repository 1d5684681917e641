"""The devstack's secured and replicated Kafka, on real brokers started here and stopped after.

- `up --secure`: SASL_SSL with SCRAM-SHA-512 and ACLs. A partner principal made by
  `partner-provision` writes its own events topic and reads its own requests topic (in its own
  consumer group), and nothing else: another partner's events topic and ``bank.transactions``
  are refused by the broker; a wrong password does not get in.
- `up --brokers 3`: three KRaft nodes; a topic created without an explicit replication factor
  gets RF 3 and ``min.insync.replicas=2``.

Clients are confluent-kafka (librdkafka), as a partner would use. Each stack lives in its own
state dir on its own ports (from POINTS_TEST_KAFKA_EXTRA_PORT, default 29092, the first free
run of ports at or above it), so the developer's own stack is never touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from devstack import kafka
from devstack.paths import load_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SECURE_PORTS = 3  # client, controller, internal
CLUSTER_PORTS = 6  # 3 client + 3 controller


def _free_run(start: int, count: int) -> int:
    """The first port >= start such that ``count`` consecutive ports are free on 127.0.0.1."""
    for base in range(start, start + 500):
        if all(_free(port) for port in range(base, base + count)):
            return base
    raise RuntimeError(f"no {count} free consecutive ports from {start}")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _devstack(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "devstack", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"devstack {args}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def port_start() -> int:
    return int(os.environ.get("POINTS_TEST_KAFKA_EXTRA_PORT", "29092"))


def _stack(tmp: Path, base: int, *up_args: str) -> Iterator[dict[str, str]]:
    env = {**os.environ, "POINTS_STACK_DIR": str(tmp), "POINTS_STACK_KAFKA_PORT": str(base)}
    try:
        _devstack(env, "up", "--only", "kafka", *up_args)
        yield env
    finally:
        _devstack(env, "down", "--only", "kafka")


@pytest.fixture(scope="module")
def secure_env(
    tmp_path_factory: pytest.TempPathFactory, port_start: int
) -> Iterator[dict[str, str]]:
    base = _free_run(port_start, SECURE_PORTS)
    yield from _stack(tmp_path_factory.mktemp("secure-stack"), base, "--secure")


def _settings(env: dict[str, str], user: str) -> dict[str, str]:
    config = load_config(env)
    return kafka.client_config(config, kafka.saved_layout(config), user)


@pytest.fixture(scope="module")
def partners(secure_env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Two provisioned partners and the topics they (and the bank) use."""
    admin = AdminClient(dict(_settings(secure_env, "admin")))  # a copy typed as it wants
    names = ["bank.transactions"] + [
        f"partner.{p}.{kind}" for p in ("acme", "globex") for kind in ("events", "requests")
    ]
    for future in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result(timeout=30)
    for partner in ("acme", "globex"):
        _devstack(secure_env, "partner-provision", partner)
    producer = Producer(_settings(secure_env, "admin"))
    producer.produce("partner.acme.requests", key=b"r1", value=b"swap request for acme")
    producer.produce("bank.transactions", key=b"c1", value=b"a purchase")
    assert producer.flush(30) == 0
    return {p: _settings(secure_env, f"partner-{p}") for p in ("acme", "globex")}


def _produce_error(settings: dict[str, str], topic: str) -> KafkaError | None:
    """Produce one message; the delivery error (None when the broker took it)."""
    errors: list[KafkaError | None] = []
    producer = Producer({**settings, "message.timeout.ms": "15000"})
    producer.produce(topic, value=b"{}", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(30)
    assert errors, "no delivery report within 30 s"
    return errors[0]


def _read_one(settings: dict[str, str], topic: str, group: str) -> bytes:
    consumer = Consumer({**settings, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            value = message.value()
            assert value is not None
            consumer.commit(message=message, asynchronous=False)  # the group is usable too
            return value
        raise AssertionError(f"nothing read from {topic}")
    finally:
        consumer.close()


def test_partner_writes_its_events_and_reads_its_requests(
    partners: dict[str, dict[str, str]],
) -> None:
    """The partner principal's own topics work over SASL_SSL, in its documented group."""
    acme = partners["acme"]
    assert _produce_error(acme, "partner.acme.events") is None
    assert _read_one(acme, "partner.acme.requests", "partner.acme") == b"swap request for acme"


def test_partner_cannot_write_another_partners_events(partners: dict[str, dict[str, str]]) -> None:
    """Writing to partner.globex.events as acme: TopicAuthorizationFailed from the broker."""
    error = _produce_error(partners["acme"], "partner.globex.events")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_partner_cannot_read_bank_transactions(partners: dict[str, dict[str, str]]) -> None:
    """bank.transactions is the bank's: a partner's read is refused (topic authorization)."""
    with pytest.raises(KafkaException) as refused:
        _read_one(partners["acme"], "bank.transactions", "partner.acme")
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_wrong_password_is_refused(partners: dict[str, dict[str, str]]) -> None:
    """SCRAM with a wrong password fails authentication, and nothing is written."""
    errors: list[KafkaError] = []
    settings = {**partners["acme"], "sasl.password": "not-the-password"}
    producer = Producer({**settings, "error_cb": errors.append, "message.timeout.ms": "5000"})
    reports: list[KafkaError | None] = []
    producer.produce(
        "partner.acme.events", value=b"{}", on_delivery=lambda err, _msg: reports.append(err)
    )
    for _ in range(50):
        producer.poll(0.2)
        if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            break
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    producer.flush(15)
    assert reports and reports[0] is not None  # never delivered: the broker did not let it in


def test_three_broker_cluster_replicates_topics(
    tmp_path_factory: pytest.TempPathFactory, port_start: int
) -> None:
    """`up --brokers 3`: a topic created with the cluster's defaults has RF 3 and
    min.insync.replicas=2 (three nodes answer on the bootstrap list)."""
    base = _free_run(port_start + SECURE_PORTS, CLUSTER_PORTS)
    for env in _stack(tmp_path_factory.mktemp("cluster-stack"), base, "--brokers", "3"):
        admin = AdminClient(dict(_settings(env, "admin")))
        assert len(admin.describe_cluster(request_timeout=10).result(timeout=20).nodes) == 3
        topic = f"replicated-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(timeout=30)
        # The controller has created it; the broker answering the metadata request may learn
        # of its partitions a moment later (an empty partition map once failed CI here).
        deadline = time.monotonic() + 30
        described = admin.list_topics(topic, timeout=20).topics[topic]
        while len(described.partitions) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
            described = admin.list_topics(topic, timeout=20).topics[topic]
        assert len(described.partitions) == 3
        assert {len(p.replicas) for p in described.partitions.values()} == {3}
        resource = ConfigResource(ResourceType.TOPIC, topic)
        configs = admin.describe_configs([resource])[resource].result(timeout=20)
        assert configs["min.insync.replicas"].value == "2"
