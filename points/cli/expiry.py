"""Running an expiry (lots or holds) as a series of bounded ledger operations.

Each operation takes at most ``BATCH_SIZE`` lots or holds and commits on its own, so a long
run makes steady, durable progress. Keys are deterministic per (kind, program, as-of,
operator, batch number): a run interrupted and started again replays the batches already
done (``AlreadyApplied``) and goes on with new ones. The loop ends when nothing due is left,
and stops if an applied batch made no progress (that would be a ledger bug).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Connection

from points.cli.context import Ops, run_key
from points.cli.output import ProgressTask
from points.errors import LedgerInvariantViolated
from points.ledger import Applied, ExpireHolds, ExpireLots, Reason, Rejected, apply_batch

__all__ = ["BATCH_SIZE", "RunResult", "run_expiry"]

BATCH_SIZE: Final = 1_000
# Batches of earlier, interrupted runs that a new run may replay before going on.
REPLAYED_BATCHES_MAX: Final = 10_000


@dataclass(frozen=True, slots=True)
class RunResult:
    entry_keys: tuple[str, ...]  # keys of the entries this run wrote
    replayed: int  # batches found done by an earlier run
    done: int  # lots or holds taken by this run


def run_expiry(
    ops: Ops,
    kind: str,
    as_of: datetime,
    operator: str,
    count_due: Callable[[Connection, str, datetime], int],
    progress: ProgressTask,
) -> RunResult:
    reason = Reason(operator=operator, note=f"{kind} as of {as_of.isoformat()}")
    written: list[str] = []
    replayed = done = 0
    with ops.read() as conn:
        remaining = count_due(conn, ops.program, as_of)
    number = 0
    while remaining > 0:
        number += 1
        key = run_key(kind, ops.program, as_of.isoformat(), operator, str(number))
        operation: ExpireLots | ExpireHolds
        if kind == "expire-lots":
            operation = ExpireLots(key, as_of, program=ops.program, limit=BATCH_SIZE,
                                   reason=reason)
        else:
            operation = ExpireHolds(key, as_of, program=ops.program, limit=BATCH_SIZE,
                                    reason=reason)
        with ops.engine().begin() as conn:
            (result,) = apply_batch(conn, [operation], now=ops.now())
            after = count_due(conn, ops.program, as_of)
        if isinstance(result, Rejected):
            raise result.error
        if isinstance(result, Applied):
            if after >= remaining:
                raise LedgerInvariantViolated(
                    f"{kind} batch {key} made no progress ({remaining} still due)")
            written.append(key)
        else:
            replayed += 1
            if replayed > REPLAYED_BATCHES_MAX:
                raise LedgerInvariantViolated(f"{kind}: too many replayed batches")
        progress.advance(max(remaining - after, 0))
        done += max(remaining - after, 0)
        remaining = after
    return RunResult(tuple(written), replayed, done)
