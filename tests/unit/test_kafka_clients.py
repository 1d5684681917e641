"""One Kafka connection settings group (``POINTS_KAFKA__*``) reaches every client.

Each client the product builds -- the faust app's consumer and producer (the outbox relay
publishes on it), the admin client (topic creation, the lag reader), the plain producers and
consumers (partner simulator, demo, benchmarks) -- is built here from Settings read from the
environment, and its effective aiokafka connection config is checked: protocol, SASL mechanism,
user, password, a TLS context that verifies the CA and the host name, the client certificate.
No product module constructs an aiokafka client or a faust app's broker on its own.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from devstack.kafka_security import ensure_certificates
from points.settings import load_settings
from streams import kafka_clients
from streams.app import create_app

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("points", "streams", "adapters", "demo", "benchmarks", "simulation", "devstack")


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """SASL_SSL with SCRAM-SHA-256, a password file, a CA and a client certificate (mTLS)."""
    ca_pem, client_pem = ensure_certificates(tmp_path / "tls", "127.0.0.1")
    password_file = tmp_path / "worker.password"
    password_file.write_text("s3cret-from-file\n")
    env = {
        "POINTS_KAFKA__BOOTSTRAP_SERVERS": "10.0.0.1:9093,10.0.0.2:9093",
        "POINTS_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "POINTS_KAFKA__SASL_MECHANISM": "SCRAM-SHA-256",
        "POINTS_KAFKA__SASL_USERNAME": "worker",
        "POINTS_KAFKA__SASL_PASSWORD_FILE": str(password_file),
        "POINTS_KAFKA__SSL_CAFILE": str(ca_pem),
        # broker.pem holds a key and its certificate chain: good enough as a client identity.
        "POINTS_KAFKA__SSL_CERTFILE": str(client_pem),
        "POINTS_KAFKA__SSL_KEYFILE": str(client_pem),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _effective(client: Any) -> dict[str, Any]:
    """What an aiokafka client will connect with (its AIOKafkaClient's settings)."""
    inner = getattr(client, "_client", None) or client.client
    return {
        "bootstrap": inner._bootstrap_servers,
        "protocol": inner._security_protocol,
        "mechanism": inner._sasl_mechanism,
        "user": inner._sasl_plain_username,
        "password": inner._sasl_plain_password,
        "ssl_context": inner._ssl_context,
    }


def _assert_secured(effective: dict[str, Any]) -> None:
    assert effective["protocol"] == "SASL_SSL"
    assert effective["mechanism"] == "SCRAM-SHA-256"
    assert effective["user"] == "worker"
    assert effective["password"] == "s3cret-from-file"
    context = effective["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # The configured CA is loaded (the devstack CA names itself "... (throwaway)").
    assert any("throwaway" in str(cert["subject"]) for cert in context.get_ca_certs())


def test_every_aiokafka_client_gets_the_security_settings(secured: dict[str, str]) -> None:
    """Admin (topic creation, lag reader), producer and consumer from the factories."""
    kafka = load_settings().kafka

    async def build() -> list[dict[str, Any]]:
        clients = [
            kafka_clients.admin_client(kafka),
            kafka_clients.producer(kafka),
            kafka_clients.consumer(kafka, "bank.transactions", group_id="g"),
        ]
        return [_effective(client) for client in clients]

    for effective in asyncio.run(build()):
        _assert_secured(effective)
        assert effective["bootstrap"] == "10.0.0.1:9093,10.0.0.2:9093"


def test_the_faust_apps_consumer_and_producer_get_the_security_settings(
    secured: dict[str, str],
) -> None:
    """The worker's faust app (its consumer, and its producer: the outbox relay's) connects
    with the same settings; its producer keeps acks=all and idempotence on."""
    app = create_app(load_settings())

    async def build() -> tuple[dict[str, Any], dict[str, Any], Any]:
        producer = app.producer._new_producer()  # type: ignore[attr-defined]
        thread = app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        return _effective(producer), _effective(consumer), producer

    producer, consumer, raw_producer = asyncio.run(build())
    _assert_secured(producer)
    _assert_secured(consumer)
    assert raw_producer._txn_manager is not None  # enable_idempotence=True
    assert raw_producer.client._bootstrap_servers == ["10.0.0.1:9093", "10.0.0.2:9093"]


def test_plaintext_by_default_and_ssl_without_sasl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No security settings: PLAINTEXT, no TLS context. SSL alone: TLS, no SASL; the host
    name check can be turned off (the chain is still verified)."""
    monkeypatch.setenv("POINTS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    plain = kafka_clients.connection_kwargs(load_settings().kafka)
    assert plain == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    ca_pem, _ = ensure_certificates(tmp_path / "tls", "127.0.0.1")
    monkeypatch.setenv("POINTS_KAFKA__SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("POINTS_KAFKA__SSL_CAFILE", str(ca_pem))
    monkeypatch.setenv("POINTS_KAFKA__SSL_CHECK_HOSTNAME", "false")
    kwargs = kafka_clients.connection_kwargs(load_settings().kafka)
    assert kwargs["security_protocol"] == "SSL" and "sasl_mechanism" not in kwargs
    assert not kwargs["ssl_context"].check_hostname
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_the_password_never_shows_in_the_settings_or_the_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """POINTS_KAFKA__SASL_PASSWORD is a secret: not in repr/str of the settings (what a log
    line would print), nor in faust's credentials."""
    monkeypatch.setenv("POINTS_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("POINTS_KAFKA__SASL_USERNAME", "worker")
    monkeypatch.setenv("POINTS_KAFKA__SASL_PASSWORD", "hunter2-secret")
    settings = load_settings()
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in str(settings)
    assert "hunter2-secret" not in settings.model_dump_json()
    broker = kafka_clients.faust_broker_settings(settings.kafka)
    assert "hunter2-secret" not in repr(broker["broker_credentials"])
    assert kafka_clients.connection_kwargs(settings.kafka)["sasl_plain_password"] == (
        "hunter2-secret"
    )


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_PASSWORD": "x"}, "needs sasl_username"),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_USERNAME": "u"}, "exactly one of"),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_USERNAME": "u", "SASL_PASSWORD": "x",
          "SASL_PASSWORD_FILE": "/p"}, "exactly one of"),
        ({"SASL_USERNAME": "u"}, "security_protocol is PLAINTEXT"),
        ({"SSL_CAFILE": "/ca.pem"}, "security_protocol is PLAINTEXT"),
        ({"SECURITY_PROTOCOL": "SSL", "SSL_CERTFILE": "/c.pem"}, "go together"),
        ({"SECURITY_PROTOCOL": "TLS"}, "security_protocol"),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "GSSAPI"}, "sasl_mechanism"),
    ],
)  # fmt: skip
def test_incoherent_security_settings_are_refused_when_settings_load(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], complaint: str
) -> None:
    """A setting that would connect differently from what was meant fails at start-up."""
    for name, value in env.items():
        monkeypatch.setenv(f"POINTS_KAFKA__{name}", value)
    with pytest.raises(ValidationError, match=complaint):
        load_settings()


def test_no_product_module_builds_a_kafka_client_by_itself() -> None:
    """Every aiokafka client and faust broker is built by streams/kafka_clients.py, so the
    security settings cannot be forgotten by a new client (tests build their own)."""
    construction = re.compile(
        r"AIOKafka(Producer|Consumer|AdminClient)\(|broker=f?\"kafka://"
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in PRODUCT_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "kafka_clients.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if construction.search(line)
    ]
    assert offenders == []
