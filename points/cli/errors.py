"""Exit codes, and the one place where an error becomes one: :func:`exit_code_for`.

The CLI's own errors join the exchange's tree (:mod:`points.errors`) with stable codes::

    PointsError
    ├── (points.errors, points.rules.errors: mapped below by their codes)
    └── OpsError                     ops_error
        ├── BadInput                 bad_input              arguments the command cannot use
        ├── NotFound                 not_found              customer, request, entry, letter
        ├── AlreadyDecided           already_decided        approved or rejected before
        ├── SameOperator             same_operator          maker-checker: not your own request
        ├── ApprovalRequired         approval_required      adjustment waits for a second operator
        ├── ViolationsFound          violations_found       verify or a rule file check failed
        └── DatabaseUnavailable      database_unavailable   cannot connect, or not migrated

Exit codes are part of the interface: scripts and runbooks depend on them, so a code never
changes meaning. Unknown rejection codes (from a newer ledger) fall back by class.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from pydantic import ValidationError
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)

from points.errors import PointsError, RequestRejected

__all__ = [
    "AlreadyDecided",
    "ApprovalRequired",
    "BadInput",
    "DatabaseUnavailable",
    "ExitCode",
    "NotFound",
    "OpsError",
    "SameOperator",
    "ViolationsFound",
    "describe",
    "exit_code_for",
]


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # verify found violations; a rule file is invalid; ledger invariant broken
    USAGE = 2  # what click also uses for bad options and arguments
    NOT_FOUND = 3
    REFUSED = 4  # a business rule refused the request (insufficient points, already resolved)
    CONFLICT = 5  # idempotency key reused for a different request
    PENDING_APPROVAL = 6  # adjustment above the threshold: waits for a second operator
    DATABASE_UNAVAILABLE = 10
    INTERNAL = 70  # a bug: EX_SOFTWARE


class OpsError(PointsError):
    """Base of the errors the operations CLI raises itself."""

    code = "ops_error"


class BadInput(OpsError):
    code = "bad_input"


class NotFound(OpsError):
    code = "not_found"


class AlreadyDecided(OpsError):
    code = "already_decided"


class SameOperator(OpsError):
    code = "same_operator"


class ApprovalRequired(OpsError):
    code = "approval_required"


class ViolationsFound(OpsError):
    code = "violations_found"


class DatabaseUnavailable(OpsError):
    code = "database_unavailable"


EXIT_BY_CODE: Final[dict[str, ExitCode]] = {
    # points.errors
    "invalid_amount": ExitCode.USAGE,
    "invalid_request": ExitCode.USAGE,
    "unknown_entry": ExitCode.NOT_FOUND,
    "hold_not_found": ExitCode.NOT_FOUND,
    "insufficient_points": ExitCode.REFUSED,
    "hold_already_resolved": ExitCode.REFUSED,
    "hold_expired": ExitCode.REFUSED,
    "not_reversible": ExitCode.REFUSED,
    "already_reversed": ExitCode.REFUSED,
    "clawback_exceeds_earning": ExitCode.REFUSED,
    "request_rejected": ExitCode.REFUSED,
    "idempotency_conflict": ExitCode.CONFLICT,
    "limit_exceeded": ExitCode.REFUSED,
    "ledger_invariant_violated": ExitCode.CHECK_FAILED,
    # points.rules.errors
    "rule_file_invalid": ExitCode.CHECK_FAILED,
    # points.partners
    "unknown_partner": ExitCode.NOT_FOUND,
    # this module
    "bad_input": ExitCode.USAGE,
    "not_found": ExitCode.NOT_FOUND,
    "already_decided": ExitCode.REFUSED,
    "same_operator": ExitCode.REFUSED,
    "approval_required": ExitCode.PENDING_APPROVAL,
    "violations_found": ExitCode.CHECK_FAILED,
    "database_unavailable": ExitCode.DATABASE_UNAVAILABLE,
}


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for an error that reached the top of a command."""
    if isinstance(error, PointsError):
        code = EXIT_BY_CODE.get(error.code)
        if code is not None:
            return code
        return ExitCode.REFUSED if isinstance(error, RequestRejected) else ExitCode.INTERNAL
    if isinstance(error, IntegrityError):
        return ExitCode.REFUSED  # a constraint (four eyes, uniqueness) said no
    if isinstance(error, OperationalError | InterfaceError | ProgrammingError):
        return ExitCode.DATABASE_UNAVAILABLE
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return ExitCode.DATABASE_UNAVAILABLE
    if isinstance(error, ValidationError):
        return ExitCode.USAGE  # settings from the environment did not validate
    return ExitCode.INTERNAL


def describe(error: BaseException) -> str:
    """One line for stderr: what went wrong, without a traceback."""
    if isinstance(error, PointsError):
        first = error.message.splitlines()[0] if error.message else error.code
        return f"{error.code}: {first}"
    if isinstance(error, SQLAlchemyError):
        original = getattr(error, "orig", None) or error
        text = " ".join(str(original).split())[:300]
        if isinstance(error, IntegrityError):
            return f"refused by the database: {text}"
        if isinstance(error, OperationalError | ProgrammingError) and _not_migrated(text):
            return f"database not migrated (run `points-ledger migrate`): {text}"
        if exit_code_for(error) is ExitCode.DATABASE_UNAVAILABLE:
            return f"database unavailable: {text}"
        return f"database error: {text}"
    if isinstance(error, ValidationError):
        return f"invalid settings: {' '.join(str(error).split())[:300]}"
    return f"internal error: {type(error).__name__}: {error} (rerun with --debug for a traceback)"


def _not_migrated(text: str) -> bool:
    lowered = text.lower()
    return "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered)
