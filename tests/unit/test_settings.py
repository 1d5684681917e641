"""Settings: defaults, environment overrides, and the embedded SQLite default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from points.settings import load_settings


def test_without_a_database_url_the_ledger_is_an_sqlite_file_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No POINTS_DATABASE__URL means the embedded default: <data_dir>/ledger.sqlite3."""
    monkeypatch.delenv("POINTS_DATABASE__URL", raising=False)
    monkeypatch.setenv("POINTS_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


def test_environment_variables_configure_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """POINTS_<GROUP>__<FIELD> sets nested fields; a database URL replaces the SQLite default."""
    monkeypatch.setenv("POINTS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    monkeypatch.setenv("POINTS_KAFKA__TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("POINTS_DATABASE__URL", "postgresql+psycopg://u:p@127.0.0.1:5432/db")
    monkeypatch.setenv("POINTS_WORKER__WEB_PORT", "7001")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.kafka.topic_partitions == 12
    assert settings.database_url == "postgresql+psycopg://u:p@127.0.0.1:5432/db"
    assert settings.worker.web_port == 7001


def test_topic_names_are_declared_once_and_partner_topics_derive_from_the_partner_id() -> None:
    """Partner topics follow partner.<id>.events / .requests so broker ACLs can apply per id."""
    topics = load_settings().kafka.topics
    assert topics.bank_transactions == "bank.transactions"
    assert topics.partner_events("ridehail") == "partner.ridehail.events"
    assert topics.partner_requests("ridehail") == "partner.ridehail.requests"
    assert set(topics.source_topics()) == {
        "bank.transactions",
        "bank.customers",
        "customer.activity",
    }


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POINTS_KAFKA__TOPIC_PARTITIONS", "0"),
        ("POINTS_WORKER__BATCH_SIZE_MAX", "-5"),
        ("POINTS_WORKER__WEB_PORT", "70000"),
    ],
)
def test_out_of_range_values_are_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A bad limit fails loudly when settings load, not later inside a worker."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        load_settings()
