"""``adjust approve REQUEST_ID --operator``: the checker applies a pending adjustment.

The approval and the ledger entry are one transaction: if the ledger refuses (the wallet no
longer covers a debit) nothing is written and the request stays pending. The approver must
not be the requester; the table's CHECK constraint refuses it too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy import Connection

from points.cli.context import ops_of, require_operator
from points.cli.errors import AlreadyDecided, NotFound, SameOperator
from points.cli.output import fmt_signed
from points.cli.store import AdjustmentRequest, decide_request, request_by_id
from points.ledger import Adjust, Reason, Rejected, apply_batch

RequestId = Annotated[int, typer.Argument(help="The request's id (see `adjust list`).",
                                          show_default=False)]


def take_decision(
    conn: Connection, request_id: int, *, operator: str, status: str, now: datetime
) -> AdjustmentRequest:
    """Lock a pending request and record the checker's decision (approve or reject); the four-
    eyes rule and "decided once" are checked here and by the table's constraints."""
    request = request_by_id(conn, request_id, lock=True)
    if request is None:
        raise NotFound(f"no adjustment request {request_id}")
    if request.status != "pending":
        raise AlreadyDecided(f"request {request_id} was {request.status} by {request.decided_by}")
    if request.requested_by == operator:
        verb = "approve" if status == "approved" else "decide"
        raise SameOperator(f"{operator} requested {request_id}; another operator must {verb} it")
    if not decide_request(conn, request_id, status=status, operator=operator, now=now):
        raise AlreadyDecided(f"request {request_id} was decided meanwhile")
    return request


def command(ctx: typer.Context, request_id: RequestId,
            operator: Annotated[str, typer.Option(
                "--operator", help="The approver: not the requester.",
                show_default=False)]) -> None:
    """Approve a pending adjustment and apply it."""
    ops = ops_of(ctx)
    operator = require_operator(operator)
    now = ops.now()
    with ops.engine().begin() as conn:
        request = take_decision(conn, request_id, operator=operator, status="approved", now=now)
        (result,) = apply_batch(conn, [Adjust(
            idempotency_key=request.idempotency_key, customer_id=request.customer_id,
            delta=request.delta, program=request.program,
            reason=Reason(operator=operator, note=request.reason,
                          source_event=f"adjustment_request:{request.id}"),
            expires_at=ops.lot_expiry(request.requested_at) if request.delta > 0 else None,
        )], now=now)
        if isinstance(result, Rejected):
            raise result.error  # rolls back the approval too: the request stays pending
    data = {**request.to_json(), "status": "approved", "decided_by": operator,
            "decided_at": now, "entry_id": result.entry_id}
    ops.output.emit(data, f"approved request {request_id}: {fmt_signed(request.delta)} points "
                          f"for {request.customer_id}, entry {result.entry_id} "
                          f"(key {request.idempotency_key})")
