"""The idempotency key retention settings (``POINTS_API__IDEMPOTENCY__*``): defaults, bounds,
and one environment variable read alike by the API and the operations CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from points.api.idempotency import retention_cutoff
from points.api.settings import load_api_settings, load_idempotency_settings

HS_ENV = {"POINTS_API__JWT__ALGORITHMS": '["HS256"]', "POINTS_API__JWT__SECRET": "s" * 32}


def test_defaults_keep_keys_72_hours_and_purge_hourly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without configuration a key replays for 72 hours and the API purges once an hour."""
    monkeypatch.delenv("POINTS_API__IDEMPOTENCY__RETENTION_HOURS", raising=False)
    monkeypatch.delenv("POINTS_API__IDEMPOTENCY__PURGE_INTERVAL_S", raising=False)
    settings = load_idempotency_settings()
    assert (settings.retention_hours, settings.purge_interval_s) == (72, 3600)


def test_the_api_and_the_cli_read_the_same_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """POINTS_API__IDEMPOTENCY__RETENTION_HOURS / __PURGE_INTERVAL_S configure both; the CLI's
    reader needs none of the API's required JWT settings."""
    monkeypatch.setenv("POINTS_API__IDEMPOTENCY__RETENTION_HOURS", "24")
    monkeypatch.setenv("POINTS_API__IDEMPOTENCY__PURGE_INTERVAL_S", "0")
    for name in HS_ENV:
        monkeypatch.delenv(name, raising=False)
    assert load_idempotency_settings().retention_hours == 24
    for name, value in HS_ENV.items():
        monkeypatch.setenv(name, value)
    api = load_api_settings()
    assert (api.idempotency.retention_hours, api.idempotency.purge_interval_s) == (24, 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETENTION_HOURS", "0"),
        ("RETENTION_HOURS", str(24 * 366 + 1)),
        ("RETENTION_HOURS", "soon"),
        ("PURGE_INTERVAL_S", "-1"),
        ("PURGE_INTERVAL_S", str(7 * 86_400 + 1)),
    ],
)
def test_values_out_of_bounds_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """A retention under an hour or over a year, or a negative or over-a-week interval, does
    not validate (the API refuses to start, the CLI exits 2)."""
    monkeypatch.setenv(f"POINTS_API__IDEMPOTENCY__{name}", value)
    with pytest.raises(ValidationError):
        load_idempotency_settings()


def test_the_cutoff_is_the_retention_before_now_in_utc() -> None:
    """Keys created before now minus the retention are expired; the cutoff is in UTC
    whatever the clock's zone (SQLite compares the stored UTC text)."""
    now = datetime(2026, 11, 27, 20, 0, tzinfo=timezone(timedelta(hours=8)))
    cutoff = retention_cutoff(now, 72)
    assert cutoff == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert cutoff.utcoffset() == timedelta(0)
