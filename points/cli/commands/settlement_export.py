"""``settlement export --partner P --from DATE --to DATE --format csv|json``: a partner's
settlement statement for entries created in ``[from, to)`` (``--to`` is exclusive: a month
is ``--from 2026-03-01 --to 2026-04-01``), computed by :mod:`points.exchange.settlement`.

The statement goes to stdout (or ``--output FILE``) byte for byte as the exchange renders it:
the same ledger and period give the same bytes.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError

from points.cli.context import ops_of, parse_moment
from points.cli.errors import BadInput
from points.exchange.settlement import Statement, settle, to_csv, to_json
from points.partners import PartnersConfig

__all__ = ["Format", "command", "load_partners", "render"]


class Format(StrEnum):
    csv = "csv"
    json = "json"


def render(statement: Statement, fmt: Format) -> bytes:
    """The statement's bytes in ``fmt`` (``python -m points.exchange.settlement`` uses it too)."""
    return to_csv(statement) if fmt is Format.csv else to_json(statement)


def load_partners(path: Path) -> PartnersConfig:
    try:
        with path.open(encoding="utf-8") as handle:
            return PartnersConfig.model_validate(yaml.safe_load(handle))
    except OSError as error:
        raise BadInput(f"cannot read partners config {path}: {error.strerror}") from error
    except (yaml.YAMLError, ValidationError) as error:
        first = " ".join(str(error).split())[:300]
        raise BadInput(f"invalid partners config {path}: {first}") from error


def command(
    ctx: typer.Context,
    partner: Annotated[str, typer.Option("--partner", help="Partner id, e.g. ridehail.",
                                         show_default=False)],
    start: Annotated[str, typer.Option("--from", help="Period start (ISO date/time, "
                                       "inclusive; a date is 00:00 UTC).", show_default=False)],
    end: Annotated[str, typer.Option("--to", help="Period end (exclusive).",
                                     show_default=False)],
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.csv,
    output: Annotated[Path | None, typer.Option(
        "--output", help="Write the statement to this file instead of stdout.",
        dir_okay=False, show_default=False)] = None,
    partners_config: Annotated[Path, typer.Option(
        "--partners-config", help="The partners file (contract prices).")
    ] = Path("config/partners.yaml"),
) -> None:
    """Export a partner's settlement statement for a period."""
    ops = ops_of(ctx)
    period_start = parse_moment("--from", start, allow_future=True)
    period_end = parse_moment("--to", end, allow_future=True)
    if period_end <= period_start:
        raise BadInput("--to must be after --from")
    config = load_partners(partners_config).get(partner)  # UnknownPartner: exit 3
    with ops.read() as conn:
        statement = settle(conn, config, period_start, period_end)
    data = render(statement, fmt)
    if output is None:
        ops.output.out.file.write(data.decode())
        return
    output.write_bytes(data)
    ops.output.emit(
        {"partner_id": partner, "file": str(output), "format": fmt.value,
         "bytes": len(data), "net_points": statement.net_points,
         "net_amount_minor": statement.net_amount_minor, "reconciled": statement.reconciled},
        f"wrote {output} ({len(data)} bytes): net {statement.net_points} points, "
        f"{statement.net_amount_minor} {statement.currency} minor units, "
        + ("reconciled" if statement.reconciled
           else f"{len(statement.discrepancies)} discrepancies"),
    )
