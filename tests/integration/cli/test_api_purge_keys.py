"""``api purge-idempotency-keys``: the customer API's stored Idempotency-Key responses past
their retention are deleted in chunks; younger ones stay; the dry run only counts (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from points.api import idempotency
from points.api.tables import idempotency_keys
from points.cli import app
from tests.integration.cli.support import NOW, cli, cli_json, engine_for

HOUR = timedelta(hours=1)
PURGE = ("api", "purge-idempotency-keys")


def store_key(url: str, customer: str, key: str, created_at: datetime) -> None:
    """Store a response under ``key`` as the API would have at ``created_at``."""
    response = idempotency.StoredResponse("0" * 64, 200, '{"points":1}', "application/json")
    with engine_for(url) as engine, engine.begin() as conn:
        assert idempotency.store(
            conn, customer, key, method="POST", route="/v1/x", response=response, now=created_at
        )


def stored_keys(url: str) -> list[str]:
    with engine_for(url) as engine, engine.connect() as conn:
        rows = conn.execute(
            select(idempotency_keys.c.idempotency_key).order_by(idempotency_keys.c.idempotency_key)
        )
        return [str(r[0]) for r in rows]


def boxed_text(stderr: str) -> str:
    """Click's usage message without the frame and line breaks of its Rich box."""
    return " ".join(stderr.replace("│", " ").split())


def test_keys_older_than_the_retention_go_in_chunks_and_younger_ones_stay(
    migrated_url: str,
) -> None:
    """With the default 72 h retention, keys created 73 h and more ago are deleted oldest
    first, ``--chunk-size`` per transaction (a last, short chunk ends the run); a key 71 h
    old and a fresh one stay. Run again, there is nothing left to delete."""
    for i, age in enumerate((500, 100, 73)):
        store_key(migrated_url, "c1", f"old-{i}", NOW - age * HOUR)
    store_key(migrated_url, "c2", "young", NOW - 71 * HOUR)
    store_key(migrated_url, "c1", "fresh", NOW)

    data = cli_json(migrated_url, *PURGE, "--chunk-size", "2")
    assert (data["dry_run"], data["retention_hours"]) == (False, 72)
    assert (data["expired"], data["deleted"], data["chunks"], data["chunk_size"]) == (3, 3, 2, 2)
    assert stored_keys(migrated_url) == ["fresh", "young"]

    again = cli(migrated_url, *PURGE)
    assert again.exit_code == 0, again.output
    assert "deleted 0 stored idempotency keys" in again.stdout
    assert stored_keys(migrated_url) == ["fresh", "young"]


def test_dry_run_counts_and_deletes_nothing(migrated_url: str) -> None:
    """``--dry-run`` reports how many keys are past the retention, in JSON and for people,
    and every key is still stored afterwards."""
    store_key(migrated_url, "c1", "old-1", NOW - 80 * HOUR)
    store_key(migrated_url, "c2", "old-2", NOW - 200 * HOUR)
    store_key(migrated_url, "c1", "young", NOW - HOUR)

    data = cli_json(migrated_url, *PURGE, "--dry-run")
    assert (data["dry_run"], data["expired"], data["retention_hours"]) == (True, 2, 72)
    assert "deleted" not in data
    people = cli(migrated_url, *PURGE, "--dry-run")
    assert people.exit_code == 0, people.output
    assert "2 stored idempotency keys created before" in people.stdout
    assert "nothing was deleted" in people.stdout
    assert stored_keys(migrated_url) == ["old-1", "old-2", "young"]


def test_the_retention_comes_from_the_api_setting_and_the_option_overrides_it(
    migrated_url: str,
) -> None:
    """POINTS_API__IDEMPOTENCY__RETENTION_HOURS sets the default cutoff (the API's own
    setting); ``--older-than-hours`` wins over it."""
    store_key(migrated_url, "c1", "k-30h", NOW - 30 * HOUR)
    store_key(migrated_url, "c1", "k-10h", NOW - 10 * HOUR)
    store_key(migrated_url, "c1", "k-1h", NOW - HOUR)

    result = cli(
        migrated_url, "--json", *PURGE, env={"POINTS_API__IDEMPOTENCY__RETENTION_HOURS": "24"}
    )
    assert result.exit_code == 0, result.output
    assert stored_keys(migrated_url) == ["k-10h", "k-1h"]

    data = cli_json(migrated_url, *PURGE, "--older-than-hours", "5")
    assert (data["retention_hours"], data["deleted"]) == (5, 1)
    assert stored_keys(migrated_url) == ["k-1h"]


def test_bad_options_and_settings_are_usage_errors_that_delete_nothing(migrated_url: str) -> None:
    """A retention or chunk size out of bounds, or an invalid retention in the environment,
    exits 2 with a message naming the problem, before anything is deleted."""
    store_key(migrated_url, "c1", "old", NOW - 100 * HOUR)

    zero = cli(migrated_url, *PURGE, "--older-than-hours", "0")
    assert zero.exit_code == 2
    assert "Invalid value for '--older-than-hours'" in boxed_text(zero.stderr)
    assert "greater than or equal to 1" in boxed_text(zero.stderr)
    huge = cli(migrated_url, *PURGE, "--chunk-size", "1000000")
    assert huge.exit_code == 2
    assert "Invalid value for '--chunk-size'" in boxed_text(huge.stderr)
    words = cli(migrated_url, *PURGE, "--older-than-hours", "three")
    assert words.exit_code == 2
    assert "Invalid value for '--older-than-hours'" in boxed_text(words.stderr)

    bad_env = cli(migrated_url, *PURGE, env={"POINTS_API__IDEMPOTENCY__RETENTION_HOURS": "0"})
    assert bad_env.exit_code == 2
    assert bad_env.stderr.startswith("error: invalid settings:")
    assert "retention_hours" in bad_env.stderr

    assert stored_keys(migrated_url) == ["old"]


def test_the_command_documents_itself_without_a_database() -> None:
    """``--help`` names the options and touches no database."""
    result = CliRunner().invoke(app, [*PURGE, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: points-ledger api purge-idempotency-keys" in result.stdout
    for option in ("--older-than-hours", "--chunk-size", "--dry-run"):
        assert option in result.stdout
