"""``reverse ENTRY_KEY --reason --operator [--key]``: undo a committed entry.

The ledger writes the mirrored legs as a new entry pointing at the original (earn, referral,
swap, spend or adjust), at most once per entry: a second reversal is refused (exit 4) even
under another key, so a fresh default key is safe.
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import correction_reason, new_key, ops_of
from points.cli.options import Key, Operator, ReasonText
from points.cli.writes import report, write
from points.ledger import Reverse


def command(
    ctx: typer.Context,
    entry_key: Annotated[str, typer.Argument(help="Key of the entry to reverse.",
                                             show_default=False)],
    reason: ReasonText,
    operator: Operator,
    key: Key = None,
) -> None:
    """Reverse a committed entry."""
    ops = ops_of(ctx)
    why = correction_reason(operator, reason)
    key = new_key("reverse", key)
    result = write(ops, Reverse(idempotency_key=key, entry_key=entry_key,
                                reason=why))
    report(ops, result, f"reversed {entry_key}", reversed_key=entry_key, operator=why.operator)
