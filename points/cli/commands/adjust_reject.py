"""``adjust reject REQUEST_ID --operator``: the checker turns a pending adjustment down.

Like approval, rejection is the checker's: the requester cannot reject (withdraw) their own
request, the table's four-eyes CHECK covers every decision.
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.commands.adjust_approve import RequestId, take_decision
from points.cli.context import ops_of, require_operator


def command(ctx: typer.Context, request_id: RequestId,
            operator: Annotated[str, typer.Option(
                "--operator", help="Who rejects: not the requester.",
                show_default=False)]) -> None:
    """Reject a pending adjustment; nothing is written to the ledger."""
    ops = ops_of(ctx)
    operator = require_operator(operator)
    now = ops.now()
    with ops.engine().begin() as conn:
        request = take_decision(conn, request_id, operator=operator, status="rejected", now=now)
    data = {**request.to_json(), "status": "rejected", "decided_by": operator,
            "decided_at": now}
    ops.output.emit(data, f"rejected request {request_id} of {request.requested_by}")
