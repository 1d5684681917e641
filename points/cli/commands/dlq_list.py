"""``dlq list [--reason CODE] [--topic T] [--not-replayed] [--limit N]``: dead letters.

Each row shows where the message came from (topic/partition/offset), why it was rejected,
and whether and by whom it was replayed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import ops_of
from points.cli.options import Limit
from points.cli.output import fmt_time, table
from points.cli.store import DeadLetter, list_dead_letters

REASON_SHOWN_MAX = 80


def letters_table(title: str, letters: list[DeadLetter]) -> object:
    return table(
        title,
        ["id", "source", "reason code", "reason", "received", "replayed"],
        [(d.id, d.source, d.reason_code,
          d.reason if len(d.reason) <= REASON_SHOWN_MAX
          else d.reason[: REASON_SHOWN_MAX - 1] + "…",
          fmt_time(d.created_at),
          f"by {d.replayed_by} {d.replayed_at}" if d.replayed_by else "")
         for d in letters],
        numeric=("id",),
    )


def command(
    ctx: typer.Context,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Only this reason code (e.g. invalid_json, contract_violation).",
        show_default=False)] = None,
    topic: Annotated[str | None, typer.Option("--topic", help="Only this source topic.",
                                              show_default=False)] = None,
    not_replayed: Annotated[bool, typer.Option(
        "--not-replayed", help="Only letters not replayed yet.")] = False,
    limit: Limit = 100,
) -> None:
    """List dead letters, oldest first."""
    ops = ops_of(ctx)
    with ops.read() as conn:
        letters = list_dead_letters(conn, reason_code=reason, topic=topic, limit=limit,
                                    not_replayed=not_replayed)
    ops.output.emit({"dead_letters": [d.to_json() for d in letters]},
                    letters_table("Dead letters", letters))
