"""docker-compose.yml cannot run here (no Docker engine), so pin that it agrees with the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from points.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def _field_exists(model: type[BaseModel], path: list[str]) -> bool:
    name, rest = path[0], path[1:]
    field = model.model_fields.get(name)
    if field is None:
        return False
    if not rest:
        return True
    annotation = field.annotation
    return (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and _field_exists(annotation, rest)
    )


def test_compose_runs_broker_database_migration_and_worker(compose: dict[str, Any]) -> None:
    """The services a Docker user needs are all declared."""
    assert {"kafka", "postgres", "migrate", "worker"} <= set(compose["services"])


def test_every_points_variable_in_compose_names_a_real_setting(compose: dict[str, Any]) -> None:
    """Settings ignore unknown variables, so a typo in compose would be silent: forbid it."""
    for name, service in compose["services"].items():
        for variable in service.get("environment") or {}:
            if not variable.startswith("POINTS_"):
                continue
            path = variable.removeprefix("POINTS_").lower().split("__")
            assert _field_exists(Settings, path), f"{name}: {variable} is not a setting"


def test_app_services_reach_the_compose_broker_and_database(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's settings, built from compose's environment, point at compose's services."""
    env = compose["services"]["worker"]["environment"]
    for key in list(__import__("os").environ):
        if key.startswith("POINTS_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    kafka_env = compose["services"]["kafka"]["environment"]
    assert (
        f"PLAINTEXT://{settings.kafka.bootstrap_servers}" == kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    )
    pg = compose["services"]["postgres"]["environment"]
    assert settings.database_url == (
        f"postgresql+psycopg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert settings.kafka.topic_partitions == int(kafka_env["KAFKA_NUM_PARTITIONS"])


def test_compose_and_the_local_stack_run_the_same_kafka_version(compose: dict[str, Any]) -> None:
    """The Docker image tag equals the kafka_2.13 version the local stack fetches from Maven."""
    pom = (ROOT / "devstack" / "kafka-pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match, "kafka.version property not found in devstack/kafka-pom.xml"
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{match.group(1)}"


# --- the secured 3-broker profile ------------------------------------------------------------

SECURE_SERVICES = ("kafka-secrets", "kafka-1", "kafka-2", "kafka-3", "kafka-setup",
                   "worker-secure")  # fmt: skip
#: Per-node or per-host values (addresses, paths) and the PLAIN logins, which carry the admin
#: password: compared separately below.
NODE_SPECIFIC = {
    "node.id", "controller.quorum.voters", "listeners", "advertised.listeners", "log.dirs",
    "ssl.keystore.location", "ssl.truststore.location",
    "listener.name.internal.plain.sasl.jaas.config",
    "listener.name.controller.plain.sasl.jaas.config",
}  # fmt: skip


def _image_env_name(prop: str) -> str:
    """apache/kafka's image: KAFKA_ + the property, '.' -> '_', '_' -> '__', '-' -> '___'."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def _devstack_properties(tmp_path: Path, node: int) -> dict[str, str]:
    from devstack import kafka
    from devstack.paths import load_config

    config = load_config({"POINTS_STACK_DIR": str(tmp_path), "HOME": str(tmp_path)})
    layout = kafka.Layout(brokers=3, secure=True)
    text = kafka.render_server_properties(config, layout, kafka.nodes(config, layout)[node - 1])
    return dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))


def test_the_secure_profile_declares_three_brokers_secrets_setup_and_a_worker(
    compose: dict[str, Any],
) -> None:
    """`--profile secure` adds the cluster and its worker; plain `up` runs none of them."""
    services = compose["services"]
    for name in SECURE_SERVICES:
        assert services[name].get("profiles") == ["secure"], name
    for name in ("kafka", "postgres", "migrate", "worker"):
        assert "profiles" not in services[name], name


@pytest.mark.parametrize("node", [1, 2, 3])
def test_each_secure_broker_mirrors_the_devstacks_secure_three_broker_node(
    compose: dict[str, Any], tmp_path: Path, node: int
) -> None:
    """Every broker property `devstack up --secure --brokers 3` writes has the same value in
    the compose broker's environment (listeners, SASL, authorizer, RF 3 / min.insync 2, ...);
    the node-specific ones name the node's own host, and the internal logins are admin's."""
    env = {k: str(v) for k, v in compose["services"][f"kafka-{node}"]["environment"].items()}
    properties = _devstack_properties(tmp_path, node)
    mirrored = {p: v for p, v in properties.items() if p not in NODE_SPECIFIC}
    assert {p: env.get(_image_env_name(p)) for p in mirrored} == mirrored
    assert env["KAFKA_NODE_ID"] == str(node)
    assert env["KAFKA_ADVERTISED_LISTENERS"] == (
        f"CLIENT://kafka-{node}:9092,INTERNAL://kafka-{node}:9094"
    )
    names = {entry.split("://")[0] for entry in properties["listeners"].split(",")}
    assert {e.split("://")[0] for e in env["KAFKA_LISTENERS"].split(",")} == names
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    )
    for listener in ("INTERNAL", "CONTROLLER"):
        login = env[f"KAFKA_LISTENER_NAME_{listener}_PLAIN_SASL_JAAS_CONFIG"]
        assert 'username="admin"' in login and "user_admin=" in login
    assert env["KAFKA_SSL_KEYSTORE_LOCATION"] == "/secrets/tls/broker.pem"
    assert env["KAFKA_SSL_TRUSTSTORE_LOCATION"] == "/secrets/tls/ca.pem"


def test_the_setup_script_is_the_one_generated_from_the_devstacks_acls() -> None:
    """kafka-setup runs devstack/compose-secure-setup.sh: it must be what
    `python -m devstack.compose setup-script` renders from BANK_ACLS today."""
    from devstack import compose as compose_profile

    assert compose_profile.SETUP_SCRIPT.read_text() == compose_profile.render_setup_script()


def test_the_secure_worker_connects_as_the_worker_principal_with_the_secrets_made_for_it(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """worker-secure's Settings: SASL_SSL as `worker` to the three brokers' client listeners,
    with the CA and password file that kafka-secrets writes; the broker certificate names
    kafka-1..3, so the host name check holds."""
    from cryptography import x509

    from devstack import compose as compose_profile

    for key in list(__import__("os").environ):
        if key.startswith("POINTS_"):
            monkeypatch.delenv(key)
    for key, value in compose["services"]["worker-secure"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    kafka = Settings().kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username) == (
        "SASL_SSL", "SCRAM-SHA-512", "worker")
    assert kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert kafka.ssl_check_hostname

    compose_profile.make_secrets(tmp_path)
    secrets_volume = Path("/secrets")
    assert kafka.ssl_cafile is not None and kafka.sasl_password_file is not None
    for path in (kafka.ssl_cafile, kafka.sasl_password_file):
        assert (tmp_path / path.relative_to(secrets_volume)).is_file(), path
    cert = x509.load_pem_x509_certificates((tmp_path / "tls" / "broker.pem").read_bytes())[0]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"kafka-1", "kafka-2", "kafka-3"} <= set(names.get_values_for_type(x509.DNSName))
