"""``holds void HOLD_KEY --reason --operator [--key]``: return a held amount to the wallet.

A hold resolves at most once (the database's word): voiding a posted or voided hold is
refused (exit 4), so a fresh default key is safe.
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import correction_reason, new_key, ops_of
from points.cli.options import Key, Operator, ReasonText
from points.cli.writes import report, write
from points.ledger import VoidHold


def command(
    ctx: typer.Context,
    hold_key: Annotated[str, typer.Argument(help="The hold's idempotency key.",
                                            show_default=False)],
    reason: ReasonText,
    operator: Operator,
    key: Key = None,
) -> None:
    """Void a pending hold."""
    ops = ops_of(ctx)
    why = correction_reason(operator, reason)
    key = new_key("void", key)
    result = write(ops, VoidHold(idempotency_key=key, hold_key=hold_key,
                                 reason=why))
    report(ops, result, f"voided hold {hold_key}", hold_key=hold_key, operator=why.operator)
