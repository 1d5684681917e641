"""``rules validate FILE...``: load each rule file as the worker would; list every problem.

Exit 0 when all are valid, 1 when any is not (each problem names the file, rule and field).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from points.cli.context import ops_of
from points.cli.errors import ViolationsFound
from points.cli.output import table
from points.rules import RuleFileError, load_ruleset

RuleFiles = Annotated[list[Path], typer.Argument(
    help="Rule files (YAML).", exists=True, dir_okay=False, readable=True, show_default=False)]


def command(ctx: typer.Context, files: RuleFiles) -> None:
    """Validate earning rule files."""
    ops = ops_of(ctx)
    results: list[dict[str, object]] = []
    rows: list[tuple[str, str, str, str, str]] = []
    invalid = 0
    for path in files:
        try:
            ruleset = load_ruleset(path)
        except RuleFileError as error:
            invalid += 1
            problems = [{"rule_id": p.rule_id, "field": p.field, "message": p.message}
                        for p in error.problems]
            results.append({"file": str(path), "ok": False, "problems": problems})
            rows.extend((str(path), "INVALID", p.rule_id or "", p.field or "", p.message)
                        for p in error.problems)
            continue
        kinds = Counter(rule.kind for rule in ruleset.rules)
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        results.append({"file": str(path), "ok": True, "version": ruleset.version,
                        "rules": len(ruleset.rules), "kinds": dict(sorted(kinds.items()))})
        rows.append((str(path), "ok", "", "",
                     f"version {ruleset.version}, {len(ruleset.rules)} rules ({summary})"))
    ops.output.emit({"files": results, "ok": invalid == 0},
                    table("Rule files", ["file", "result", "rule", "field", "detail"], rows))
    if invalid:
        raise ViolationsFound(f"{invalid} of {len(files)} rule files are invalid")
