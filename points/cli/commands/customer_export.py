"""``customer export --format csv --out FILE``: every customer's behaviour profile, for analysts.

One row per customer with at least one event, all as of one day (``--as-of``, default the
newest event day the stream has seen: event time). The columns are
:data:`points.marketing.profiles.EXPORT_COLUMNS`, documented in docs/marketing.md. CSV only:
Parquet would need pyarrow, a heavy dependency this project does not carry.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from points.cli.commands.customer_show import parse_day
from points.cli.context import ops_of
from points.cli.errors import BadInput
from points.cli.options import AsOfDay, RulesFile
from points.marketing.profiles import export_csv
from points.rules import load_ruleset
from points.rules.plan import plan_of

__all__ = ["Format", "command"]


class Format(StrEnum):
    csv = "csv"


def command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(
        "--out", help="The file to write (replaced if it exists).", dir_okay=False,
        show_default=False)],
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.csv,
    rules: RulesFile = None,
    as_of: AsOfDay = None,
) -> None:
    """Export every customer's behaviour profile (CSV; schema in docs/marketing.md)."""
    ops = ops_of(ctx)
    day = parse_day(as_of)
    ruleset = load_ruleset(rules or ops.settings.rules.path)
    partial = out.with_name(out.name + ".partial")
    try:
        with ops.read() as conn, partial.open("w", encoding="utf-8", newline="") as handle:
            rows, used = export_csv(conn, handle, plan_of(ruleset).lifecycle, day)
        partial.replace(out)  # a reader never sees half a file
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise BadInput(f"cannot write {out}: {exc.strerror}") from exc
    ops.output.emit(
        {"file": str(out), "format": fmt.value, "rows": rows,
         "as_of": None if used is None else used.isoformat(),
         "ruleset_version": ruleset.version},
        f"wrote {out}: {rows} customers as of {used or '-'} ({fmt.value})",
    )
