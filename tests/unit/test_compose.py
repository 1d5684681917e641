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
