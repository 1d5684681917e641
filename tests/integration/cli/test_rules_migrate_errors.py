"""``rules validate|backtest``, ``migrate``, and how failures leave the CLI (exit codes,
one line on stderr)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from points.cli import app
from points.cli.commands import balance
from points.cli.errors import ExitCode
from points.ledger import Earn
from tests.conftest import reset_pg_schema
from tests.integration.cli.support import DAY, NOW, cli, cli_json, seed

SIMPLE_RULES = Path(__file__).resolve().parents[2] / "fixtures" / "rules-simple.yaml"



def test_rules_validate_accepts_a_valid_file(tmp_path: Path) -> None:
    """A valid file: exit 0 with its version and rule count."""
    result = CliRunner().invoke(app, ["--json", "rules", "validate", str(SIMPLE_RULES)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert (data["files"][0]["version"], data["files"][0]["rules"]) == ("test-simple-1", 3)
    human = CliRunner().invoke(app, ["rules", "validate", str(SIMPLE_RULES)])
    assert "version test-simple-1, 3 rules" in human.stdout


def test_rules_validate_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    """An invalid file: each problem names the rule and field; exit 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(SIMPLE_RULES.read_text().replace("points: 1\n", "points: -1\n", 1))
    result = CliRunner().invoke(app, ["--json", "rules", "validate", str(SIMPLE_RULES),
                                      str(bad)])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [f["ok"] for f in data["files"]] == [True, False]
    assert data["files"][1]["problems"][0]["rule_id"] == "base-everyday"
    assert result.stderr == "error: violations_found: 1 of 2 rule files are invalid\n"
    missing = CliRunner().invoke(app, ["rules", "validate", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2


def write_events(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_rules_backtest_compares_a_candidate_with_the_current_rules(tmp_path: Path) -> None:
    """Doubling the base rate shows as +50 net points over one 50-yuan purchase."""
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(SIMPLE_RULES.read_text()
                         .replace('version: "test-simple-1"', 'version: "test-simple-2"')
                         .replace("points: 1\n", "points: 2\n", 1))
    events = write_events(tmp_path / "events.jsonl", [
        {"event_type": "customer_profile", "event_id": "p-1", "customer_id": "c1",
         "occurred_at": "2026-11-01T00:00:00+00:00", "segment": "mass",
         "joined_at": "2020-01-01T00:00:00+00:00", "status": "active"},
        {"event_type": "purchase", "event_id": "e-1", "customer_id": "c1",
         "amount_minor": 5_000, "currency": "CNY", "mcc": "5411", "merchant_id": "m-1",
         "channel": "card_present", "occurred_at": "2026-11-02T09:00:00+00:00"},
    ])
    args = ["rules", "backtest", "--candidate", str(candidate), "--current",
            str(SIMPLE_RULES), "--events", str(events)]
    result = CliRunner().invoke(app, ["--json", *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["difference"]["net_points"] == 50
    assert data["difference"]["per_rule"] == {"base-everyday": 50, "first-swipe": 0}
    human = CliRunner().invoke(app, args)
    assert human.exit_code == 0, human.output
    assert "candidate test-simple-2" in human.stdout and "+50" in human.stdout

    events.write_text(events.read_text() + '{"event_type": "purchase"}\n')
    broken = CliRunner().invoke(app, args)
    assert broken.exit_code == 2
    assert "events.jsonl:3" in broken.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (not migrated), on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    url = str(request.getfixturevalue("pg_url"))
    reset_pg_schema(url)
    return url


def test_migrate_brings_an_empty_database_to_head_and_reads_then_work(empty_url: str) -> None:
    """Before migrating, reads exit 10 naming the fix; migrate reaches head, twice safely."""
    before = cli(empty_url, "dlq", "list")
    assert before.exit_code == int(ExitCode.DATABASE_UNAVAILABLE) == 10
    assert "database not migrated (run `points-ledger migrate`)" in before.stderr
    assert len(before.stderr.strip().splitlines()) == 1
    first = cli_json(empty_url, "migrate")
    assert first["from_revision"] is None and first["revision"]
    again = cli(empty_url, "migrate")
    assert again.exit_code == 0, again.output
    assert f"database at revision {first['revision']}" in again.stdout
    assert cli_json(empty_url, "dlq", "list") == {"dead_letters": []}


def test_an_unreachable_database_exits_10_with_one_line() -> None:
    """A database that refuses connections: exit 10, one line on stderr, no traceback."""
    result = cli("postgresql+psycopg://points:points@127.0.0.1:1/none", "verify")
    assert result.exit_code == 10
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: database unavailable:")


def test_unknown_commands_and_bad_options_are_usage_errors(migrated_url: str) -> None:
    """Click's own usage errors keep exit code 2."""
    assert cli(migrated_url, "no-such-command").exit_code == 2
    assert cli(migrated_url, "balance").exit_code == 2
    assert cli(migrated_url, "adjust", "c1", "ten", "--reason", "r",
               "--operator", "a").exit_code == 2


def test_invalid_settings_in_the_environment_are_a_usage_error(migrated_url: str) -> None:
    """A threshold that does not validate stops the command before it touches anything."""
    result = cli(migrated_url, "balance", "c1",
                 env={"POINTS_OPS__APPROVAL_THRESHOLD": "lots"})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid settings:")


def test_exit_codes_are_stable() -> None:
    """The documented exit codes (docs/operations.md) never change meaning."""
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0, "CHECK_FAILED": 1, "USAGE": 2, "NOT_FOUND": 3, "REFUSED": 4, "CONFLICT": 5,
        "PENDING_APPROVAL": 6, "DATABASE_UNAVAILABLE": 10, "INTERNAL": 70,
    }


def test_an_unexpected_error_exits_70_in_one_line_and_debug_shows_the_traceback(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug is reported as an internal error (exit 70) without a traceback unless --debug."""
    seed(migrated_url, Earn("earn:1", "c1", 1, NOW + DAY))

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(balance, "customer_balance", broken)
    result = cli(migrated_url, "balance", "c1")
    assert result.exit_code == 70
    assert result.stderr == (
        "error: internal error: RuntimeError: boom (rerun with --debug for a traceback)\n")
    debug = cli(migrated_url, "--debug", "balance", "c1")
    assert debug.exit_code == 70
    assert "Traceback (most recent call last)" in debug.stderr


@pytest.mark.parametrize("command", [
    "balance", "statement", "explain", "entry show", "adjust", "adjust new", "adjust approve",
    "adjust reject", "adjust list", "reverse", "holds list", "holds void", "holds expire",
    "expire", "verify", "dlq list", "dlq replay", "rules validate", "rules backtest",
    "migrate", "settlement export",
])
def test_every_command_documents_itself(command: str) -> None:
    """``--help`` works for every command without touching a database."""
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: points-ledger" in result.stdout
