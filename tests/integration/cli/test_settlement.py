"""``settlement export`` on SQLite and PostgreSQL (statements by points.exchange.settlement)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from points.exchange.settlement import main as settlement_main
from points.ledger import Earn, Hold, PostHold
from tests.integration.cli.support import DAY, NOW, cli, cli_json, seed

PARTNERS = Path(__file__).resolve().parents[3] / "config" / "partners.yaml"


def seed_swap_out(url: str) -> None:
    """c1 swaps 400 points out to ridehail: a hold on the clearing account, then its post."""
    seed(url, Earn("earn:1", "c1", 1_000, NOW + 90 * DAY),
         Hold("swap:s1:hold", "c1", 400, NOW + DAY, to_partner="ridehail"),
         PostHold("swap:s1:hold:post", "swap:s1:hold"))


def period() -> list[str]:
    return ["--from", (NOW - DAY).date().isoformat(), "--to", (NOW + 2 * DAY).date().isoformat()]


def test_settlement_export_writes_the_statement_as_csv_or_json(migrated_url: str,
                                                                tmp_path: Path) -> None:
    """The CSV lists the swap's line and totals; JSON carries the same figures; --output
    writes the file and reports it."""
    seed_swap_out(migrated_url)
    args = ["settlement", "export", "--partner", "ridehail", *period(),
            "--partners-config", str(PARTNERS)]
    csv_out = cli(migrated_url, *args)
    assert csv_out.exit_code == 0, csv_out.output
    rows = csv_out.stdout.splitlines()
    assert rows[0] == ("entry_id,created_at,kind,entry_key,customer_id,reference,points,"
                       "amount_minor")
    assert any(",swap_out,swap:s1:hold:post,c1,s1,400," in row for row in rows)
    statement = json.loads(cli(migrated_url, *args, "--format", "json").stdout)
    assert (statement["points_out"], statement["net_points"]) == (400, 400)
    assert statement["reconciled"] is False  # the partner never confirmed the swap

    target = tmp_path / "ridehail.json"
    written = cli_json(migrated_url, *args, "--format", "json", "--output", str(target))
    assert written["net_points"] == 400
    assert json.loads(target.read_bytes()) == statement


def test_settlement_export_refuses_unknown_partners_and_empty_periods(
        migrated_url: str) -> None:
    """An unknown partner exits 3; a period that ends before it starts exits 2."""
    unknown = cli(migrated_url, "settlement", "export", "--partner", "nope", *period(),
                  "--partners-config", str(PARTNERS))
    assert unknown.exit_code == 3
    assert "unknown_partner" in unknown.stderr
    backwards = cli(migrated_url, "settlement", "export", "--partner", "ridehail",
                    "--from", "2026-03-02", "--to", "2026-03-01",
                    "--partners-config", str(PARTNERS))
    assert backwards.exit_code == 2


def test_python_m_settlement_prints_the_bytes_settlement_export_prints(
        migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """The older ``python -m points.exchange.settlement`` (documented in docs/settlement.md)
    keeps its flags (``--start``/``--end``, JSON by default, ``--output``) and writes the very
    bytes ``points-ledger settlement export`` writes for the same period."""
    seed_swap_out(migrated_url)
    monkeypatch.setenv("POINTS_DATABASE__URL", migrated_url)
    start, end = ((NOW - DAY).date().isoformat() + "T00:00:00+00:00",
                  (NOW + 2 * DAY).date().isoformat() + "T00:00:00+00:00")
    args = ["--partner", "ridehail", "--start", start, "--end", end]
    typer_args = ["settlement", "export", "--partner", "ridehail", *period(),
                  "--partners-config", str(PARTNERS)]

    assert settlement_main(args) == 0
    as_json = capsysbinary.readouterr().out
    assert as_json == cli(migrated_url, *typer_args, "--format", "json").stdout.encode()
    target = tmp_path / "ridehail.csv"
    assert settlement_main([*args, "--format", "csv", "--output", str(target)]) == 0
    assert capsysbinary.readouterr().out == b""
    assert target.read_bytes() == cli(migrated_url, *typer_args).stdout.encode()
