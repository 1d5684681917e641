"""Writing one ledger operation the way every CLI write does, and saying what happened.

A refusal is committed before it is raised: the ledger remembers refusals under their key
(docs/ledger.md), so a retry with the same key gets the same answer and ``entry show KEY``
shows it.
"""

from __future__ import annotations

from points.cli.context import Ops
from points.ledger import AlreadyApplied, Applied, Operation, Rejected, apply_batch

__all__ = ["report", "write"]


def write(ops: Ops, operation: Operation) -> Applied | AlreadyApplied:
    with ops.engine().begin() as conn:
        (result,) = apply_batch(conn, [operation], now=ops.now())
    if isinstance(result, Rejected):
        raise result.error
    return result


def report(ops: Ops, result: Applied | AlreadyApplied, what: str,
           **extra: object) -> None:
    applied = isinstance(result, Applied)
    data: dict[str, object] = {
        "status": "applied" if applied else "already_applied",
        "entry_id": result.entry_id,
        "idempotency_key": result.idempotency_key,
        **extra,
    }
    if applied:
        line = f"{what}: entry {result.entry_id}, key {result.idempotency_key}"
    else:
        line = (f"already done earlier under key {result.idempotency_key} "
                f"(entry {result.entry_id}); nothing changed")
    ops.output.emit(data, line)
