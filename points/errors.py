"""The exchange's one error tree. Every error carries a stable ``code``.

Entry points map codes to HTTP status (API) or exit codes (CLI) in one place each; the ledger
stores the code of a rejected request so that a replay returns the same rejection.

::

    PointsError                      points_error
    ├── RequestRejected              request_rejected      a rule refused the request;
    │   │                                                  the ledger remembers the refusal
    │   ├── InvalidAmount            invalid_amount        not a positive integer within limits
    │   ├── InvalidRequest           invalid_request       malformed: naive time, no operator
    │   ├── InsufficientPoints       insufficient_points   the wallet cannot cover the debit
    │   ├── UnknownEntry             unknown_entry         no committed entry with that key
    │   ├── HoldNotFound             hold_not_found        no hold with that key
    │   ├── HoldAlreadyResolved      hold_already_resolved posted, voided or timed out already
    │   ├── HoldExpired              hold_expired          post after the hold's timeout
    │   ├── NotReversible            not_reversible        this kind of entry cannot be reversed
    │   ├── AlreadyReversed          already_reversed      the entry has its reversal already
    │   └── ClawbackExceedsEarning   clawback_exceeds_earning
    ├── IdempotencyConflict          idempotency_conflict  same key, different request
    ├── LimitExceeded                limit_exceeded        batch or amount over a hard limit
    └── LedgerInvariantViolated      ledger_invariant_violated  a bug or tampering: stop

``RequestRejected`` subclasses are *outcomes*: :func:`points.ledger.apply_batch` returns them
inside ``Rejected`` results and stores them. The others are raised (``IdempotencyConflict`` is
also returned per operation by ``apply_batch`` so that one bad message does not fail a batch).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlreadyReversed",
    "ClawbackExceedsEarning",
    "HoldAlreadyResolved",
    "HoldExpired",
    "HoldNotFound",
    "IdempotencyConflict",
    "InsufficientPoints",
    "InvalidAmount",
    "InvalidRequest",
    "LedgerInvariantViolated",
    "LimitExceeded",
    "NotReversible",
    "PointsError",
    "RequestRejected",
    "UnknownEntry",
    "error_for_code",
]


class PointsError(Exception):
    """Base of every error the exchange raises on purpose."""

    code: ClassVar[str] = "points_error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PointsError)
            and type(other) is type(self)
            and other.message == self.message
        )

    def __hash__(self) -> int:
        return hash((type(self), self.message))


class RequestRejected(PointsError):
    """A ledger rule refused the request; the refusal is stored under its idempotency key."""

    code = "request_rejected"


class InvalidAmount(RequestRejected):
    code = "invalid_amount"


class InvalidRequest(RequestRejected):
    code = "invalid_request"


class InsufficientPoints(RequestRejected):
    code = "insufficient_points"


class UnknownEntry(RequestRejected):
    code = "unknown_entry"


class HoldNotFound(RequestRejected):
    code = "hold_not_found"


class HoldAlreadyResolved(RequestRejected):
    code = "hold_already_resolved"


class HoldExpired(RequestRejected):
    code = "hold_expired"


class NotReversible(RequestRejected):
    code = "not_reversible"


class AlreadyReversed(RequestRejected):
    code = "already_reversed"


class ClawbackExceedsEarning(RequestRejected):
    code = "clawback_exceeds_earning"


class IdempotencyConflict(PointsError):
    """The key was used before for a different request (TigerBeetle's "exists with different
    fields"). Never stored: the key already belongs to the first request."""

    code = "idempotency_conflict"


class LimitExceeded(PointsError):
    code = "limit_exceeded"


class LedgerInvariantViolated(PointsError):
    """An invariant the ledger guarantees does not hold: a bug or tampering, never user input."""

    code = "ledger_invariant_violated"


_REJECTIONS: dict[str, type[RequestRejected]] = {
    cls.code: cls
    for cls in (
        RequestRejected,
        InvalidAmount,
        InvalidRequest,
        InsufficientPoints,
        UnknownEntry,
        HoldNotFound,
        HoldAlreadyResolved,
        HoldExpired,
        NotReversible,
        AlreadyReversed,
        ClawbackExceedsEarning,
    )
}


def error_for_code(code: str, message: str) -> RequestRejected:
    """Rebuild a stored rejection; an unknown code (from a newer version) stays generic."""
    cls = _REJECTIONS.get(code, RequestRejected)
    error = cls(message)
    return error
