"""The points ledger: double entry, idempotent, batch-first. See docs/ledger.md.

Write with :func:`apply_batch` (or :func:`apply`) inside your own transaction; read with the
query functions; prove the invariants with :func:`verify`.
"""

from __future__ import annotations

from points.ledger.model import (
    AMOUNT_MAX,
    BANK,
    BATCH_SIZE_MAX,
    AccountRef,
    Adjust,
    AlreadyApplied,
    Applied,
    Clawback,
    Earn,
    ExpireHolds,
    ExpireLots,
    Hold,
    Operation,
    OperationResult,
    PostHold,
    Reason,
    Rejected,
    Reverse,
    Spend,
    VoidHold,
)
from points.ledger.queries import (
    CustomerBalance,
    EntryView,
    HoldView,
    LotView,
    StatementLine,
    account_balance,
    customer_balance,
    customer_holds,
    customer_lots,
    entry_by_key,
    statement,
)
from points.ledger.service import apply, apply_batch
from points.ledger.verify import VerifyReport, Violation, verify

__all__ = [
    "AMOUNT_MAX",
    "BANK",
    "BATCH_SIZE_MAX",
    "AccountRef",
    "Adjust",
    "AlreadyApplied",
    "Applied",
    "Clawback",
    "CustomerBalance",
    "Earn",
    "EntryView",
    "ExpireHolds",
    "ExpireLots",
    "Hold",
    "HoldView",
    "LotView",
    "Operation",
    "OperationResult",
    "PostHold",
    "Reason",
    "Rejected",
    "Reverse",
    "Spend",
    "StatementLine",
    "VerifyReport",
    "Violation",
    "VoidHold",
    "account_balance",
    "apply",
    "apply_batch",
    "customer_balance",
    "customer_holds",
    "customer_lots",
    "entry_by_key",
    "statement",
    "verify",
]
