"""``adjust CUSTOMER DELTA --reason --operator [--key]``: an operator correction.

Up to the approval threshold (``POINTS_OPS__APPROVAL_THRESHOLD``, points either way) it is
applied at once. Above it the adjustment becomes a pending request in
``adjustment_requests`` and the command exits 6; a second operator applies it with
``adjust approve``. A credit gets a lot that lives ``POINTS_RULES__LOT_LIFETIME_DAYS``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import new_key, ops_of, require_operator, require_text
from points.cli.errors import AlreadyDecided, ApprovalRequired, BadInput
from points.cli.options import Customer, Key, Operator, ReasonText
from points.cli.output import fmt_signed
from points.cli.store import submit_request
from points.cli.writes import report, write
from points.errors import IdempotencyConflict
from points.ledger import Adjust, Reason


def command(
    ctx: typer.Context,
    customer: Customer,
    delta: Annotated[int, typer.Argument(
        help="Points to add (positive) or take (negative).", show_default=False)],
    reason: ReasonText,
    operator: Operator,
    key: Key = None,
) -> None:
    """Adjust a customer's points (above the threshold: a request for a second operator)."""
    ops = ops_of(ctx)
    operator = require_operator(operator)
    note = require_text("--reason", reason)
    if delta == 0:
        raise BadInput("DELTA must not be 0")
    key = new_key("adjust", key)
    now = ops.now()
    threshold = ops.settings.ops.approval_threshold
    if abs(delta) > threshold:
        with ops.engine().begin() as conn:
            request, created = submit_request(
                conn, key=key, program=ops.program, customer_id=customer, delta=delta,
                reason=note, operator=operator, now=now)
        if not request.same_request(ops.program, customer, delta, note, operator):
            raise IdempotencyConflict(
                f"key {key!r} belongs to adjustment request {request.id} for another change")
        data = {**request.to_json(), "created": created, "approval_threshold": threshold}
        if request.status == "approved":
            ops.output.emit(data, f"request {request.id} (key {key}) was approved by "
                                  f"{request.decided_by}; nothing changed")
            return
        if request.status == "rejected":
            raise AlreadyDecided(f"request {request.id} (key {key}) was rejected by "
                                 f"{request.decided_by}")
        ops.output.emit(
            data,
            f"request {request.id}: {fmt_signed(delta)} points for {customer} "
            f"(key {key}) waits for approval by another operator:",
            f"  points-ledger adjust approve {request.id} --operator NAME",
        )
        raise ApprovalRequired(
            f"{abs(delta):,} points exceed the approval threshold of {threshold:,}; "
            f"request {request.id} is pending")
    result = write(ops, Adjust(
        idempotency_key=key, customer_id=customer, delta=delta,
        reason=Reason(operator=operator, note=note), program=ops.program,
        expires_at=ops.lot_expiry(now) if delta > 0 else None,
    ))
    report(ops, result, f"adjusted {customer} by {fmt_signed(delta)}",
           customer_id=customer, delta=delta, operator=operator)
