"""``adjust reject REQUEST_ID --operator``: the checker turns a pending adjustment down.

Like approval, rejection is the checker's: the requester cannot reject (withdraw) their own
request, the table's four-eyes CHECK covers every decision.
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.commands.adjust_approve import RequestId
from points.cli.context import ops_of, require_operator
from points.cli.errors import AlreadyDecided, NotFound, SameOperator
from points.cli.store import decide_request, request_by_id


def command(ctx: typer.Context, request_id: RequestId,
            operator: Annotated[str, typer.Option(
                "--operator", help="Who rejects: not the requester.",
                show_default=False)]) -> None:
    """Reject a pending adjustment; nothing is written to the ledger."""
    ops = ops_of(ctx)
    operator = require_operator(operator)
    now = ops.now()
    with ops.engine().begin() as conn:
        request = request_by_id(conn, request_id, lock=True)
        if request is None:
            raise NotFound(f"no adjustment request {request_id}")
        if request.status != "pending":
            raise AlreadyDecided(
                f"request {request_id} was {request.status} by {request.decided_by}")
        if request.requested_by == operator:
            raise SameOperator(
                f"{operator} requested {request_id}; another operator must decide it")
        if not decide_request(conn, request_id, status="rejected", operator=operator, now=now):
            raise AlreadyDecided(f"request {request_id} was decided meanwhile")
    data = {**request.to_json(), "status": "rejected", "decided_by": operator,
            "decided_at": now}
    ops.output.emit(data, f"rejected request {request_id} of {request.requested_by}")
