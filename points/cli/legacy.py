"""The ``python -m`` entry points older than ``points-ledger``, kept because the docs and
scripts name them. Each keeps its own flags, output and exit codes, and runs the code of the
``points-ledger`` command that does the same work:

======================================  ==========================================
``python -m points.rules.check``        ``points-ledger rules validate``
``python -m points.rules.backtest``     ``points-ledger rules backtest``
``python -m points.exchange.settlement``  ``points-ledger settlement export``
======================================  ==========================================

The modules those names point at only delegate here, so the domain imports neither the CLI
nor the adapters at import time; the wiring (settings, engine, partner configuration) is
done here, at the edge.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from adapters.config import load_partners_config
from points.cli.commands.rules_backtest import compare
from points.cli.commands.rules_validate import check_rule_file
from points.cli.commands.settlement_export import Format, render
from points.db import make_engine
from points.exchange.settlement import settle
from points.rules.backtest import EventFileError, PointCost
from points.rules.errors import RuleFileError
from points.settings import load_settings

__all__ = ["backtest_main", "check_main", "settlement_main"]

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1  # check: at least one rule file is invalid
EXIT_BAD_INPUT: Final = 2  # backtest: a file could not be read or validated


def check_main(argv: Sequence[str] | None = None) -> int:
    """``python -m points.rules.check FILE [FILE...]``: one line per file on stdout (``ok``
    with the version and rule count), or every problem on stderr; exit 1 if any is invalid."""
    parser = argparse.ArgumentParser(
        prog="python -m points.rules.check", description="Validate earning rule files."
    )
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    status = EXIT_OK
    for check in map(check_rule_file, args.files):
        if check.error is not None:
            print(str(check.error), file=sys.stderr)
            status = EXIT_INVALID
            continue
        print(f"{check.path}: ok, {check.summary()}")
    return status


def _backtest_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m points.rules.backtest",
        description="Compare what two rule sets would have awarded over recorded events.",
    )
    parser.add_argument("--candidate", type=Path, required=True, help="the proposed rule file")
    parser.add_argument("--current", type=Path, required=True, help="the rule file in use")
    parser.add_argument("--events", type=Path, required=True, help="recorded messages (JSONL)")
    parser.add_argument("--profiles", type=Path, help="bank.customers messages (JSONL)")
    parser.add_argument("--cost-per-point-minor", type=int, default=1, metavar="N")
    parser.add_argument(
        "--per-points",
        type=int,
        default=1,
        metavar="M",
        help="the cost is N minor units per M points (default 1 per 1)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def backtest_main(argv: Sequence[str] | None = None) -> int:
    """``python -m points.rules.backtest --candidate F --current F --events F [--profiles F]
    [--cost-per-point-minor N] [--per-points M] [--json]``: the report as text (or JSON);
    exit 2 when a file cannot be read or validated."""
    args = _backtest_parser().parse_args(argv)
    try:
        cost = PointCost(args.cost_per_point_minor, args.per_points)
        report = compare(args.candidate, args.current, args.events, args.profiles, cost)
    except (RuleFileError, EventFileError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(report.render())
    return EXIT_OK


def settlement_main(argv: Sequence[str] | None = None) -> int:
    """``python -m points.exchange.settlement --partner ridehail --start 2026-03-01T00:00:00Z
    --end 2026-04-01T00:00:00Z [--format json|csv] [--output FILE]`` against the configured
    ledger database (``POINTS_DATABASE__URL``), with the partners of ``config/partners.yaml``
    beside the code."""
    parser = argparse.ArgumentParser(prog="python -m points.exchange.settlement")
    parser.add_argument("--partner", required=True)
    parser.add_argument("--start", required=True, type=datetime.fromisoformat)
    parser.add_argument("--end", required=True, type=datetime.fromisoformat)
    parser.add_argument("--format", choices=("json", "csv"), default="json")
    parser.add_argument("--output", default="-")
    args = parser.parse_args(argv)
    partner = load_partners_config().get(args.partner)
    engine = make_engine(load_settings().database_url)
    try:
        with engine.connect() as conn:
            statement = settle(conn, partner, args.start, args.end)
    finally:
        engine.dispose()
    data = render(statement, Format(args.format))
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(args.output, "wb") as handle:
            handle.write(data)
    return EXIT_OK
