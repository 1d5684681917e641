"""``rules validate FILE...``: load each rule file as the worker would; list every problem.

Exit 0 when all are valid, 1 when any is not (each problem names the file, rule and field).
:func:`check_rule_file` is also what ``python -m points.rules.check`` runs
(:mod:`points.cli.legacy`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from points.cli.context import ops_of
from points.cli.errors import ViolationsFound
from points.cli.output import table
from points.rules import RuleFileError, RuleSet, load_ruleset

__all__ = ["RuleFileCheck", "check_rule_file", "command"]

RuleFiles = Annotated[list[Path], typer.Argument(
    help="Rule files (YAML).", exists=True, dir_okay=False, readable=True, show_default=False)]


@dataclass(frozen=True, slots=True)
class RuleFileCheck:
    """One rule file loaded as the worker would: its rule set, or why it was refused."""

    path: Path
    ruleset: RuleSet | None = None
    error: RuleFileError | None = None

    def kinds(self) -> dict[str, int]:
        """Rules per kind, by kind name."""
        rules = self.ruleset.rules if self.ruleset is not None else ()
        return dict(sorted(Counter(rule.kind for rule in rules).items()))

    def summary(self) -> str:
        """``version V, N rules (n kind, ...)`` for a valid file."""
        assert self.ruleset is not None
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.kinds().items())
        return f"version {self.ruleset.version}, {len(self.ruleset.rules)} rules ({kinds})"


def check_rule_file(path: Path) -> RuleFileCheck:
    try:
        return RuleFileCheck(path, ruleset=load_ruleset(path))
    except RuleFileError as error:
        return RuleFileCheck(path, error=error)


def command(ctx: typer.Context, files: RuleFiles) -> None:
    """Validate earning rule files."""
    ops = ops_of(ctx)
    results: list[dict[str, object]] = []
    rows: list[tuple[str, str, str, str, str]] = []
    invalid = 0
    for check in map(check_rule_file, files):
        path, ruleset, error = check.path, check.ruleset, check.error
        if error is not None:
            invalid += 1
            problems = [{"rule_id": p.rule_id, "field": p.field, "message": p.message}
                        for p in error.problems]
            results.append({"file": str(path), "ok": False, "problems": problems})
            rows.extend((str(path), "INVALID", p.rule_id or "", p.field or "", p.message)
                        for p in error.problems)
            continue
        assert ruleset is not None
        results.append({"file": str(path), "ok": True, "version": ruleset.version,
                        "rules": len(ruleset.rules), "kinds": check.kinds()})
        rows.append((str(path), "ok", "", "", check.summary()))
    ops.output.emit({"files": results, "ok": invalid == 0},
                    table("Rule files", ["file", "result", "rule", "field", "detail"], rows))
    if invalid:
        raise ViolationsFound(f"{invalid} of {len(files)} rule files are invalid")
