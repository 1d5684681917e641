"""Errors the HTTP edge raises itself, on the exchange's one tree (:mod:`points.errors`)::

    PointsError                      points_error
    └── ApiError                     api_error
        ├── Unauthenticated          unauthenticated           401 missing/expired/bad token
        ├── NotFound                 not_found                 404 (also: another customer's)
        ├── ValidationFailed         validation_error          422 request body/params
        ├── InvalidJson              invalid_json              400 body is not JSON
        ├── IdempotencyKeyRequired   idempotency_key_required  400 POST without the header
        ├── IdempotencyKeyReused     idempotency_key_reused    422 same key, another request
        ├── RateLimited              rate_limited              429 with Retry-After
        ├── InvalidCursor            invalid_cursor            422 pagination cursor
        ├── NotConfigured            not_configured            503 a feature without settings
        └── NotReady                 not_ready                 503 database unreachable

HTTP statuses for every code (these and the domain's) are in :mod:`points.api.problems`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from points.errors import PointsError

__all__ = [
    "ApiError",
    "IdempotencyKeyRequired",
    "IdempotencyKeyReused",
    "InvalidCursor",
    "InvalidJson",
    "NotConfigured",
    "NotFound",
    "NotReady",
    "RateLimited",
    "Unauthenticated",
    "ValidationFailed",
]


class ApiError(PointsError):
    code: ClassVar[str] = "api_error"

    def __init__(self, message: str = "", *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = dict(headers or {})


class Unauthenticated(ApiError):
    code = "unauthenticated"

    def __init__(self, message: str = "a valid bearer token is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="points"'})


class NotFound(ApiError):
    code = "not_found"


class ValidationFailed(ApiError):
    code = "validation_error"

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.errors = [dict(e) for e in errors]


class InvalidJson(ApiError):
    code = "invalid_json"


class IdempotencyKeyRequired(ApiError):
    code = "idempotency_key_required"


class IdempotencyKeyReused(ApiError):
    code = "idempotency_key_reused"


class RateLimited(ApiError):
    code = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many requests; retry after {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


class InvalidCursor(ApiError):
    code = "invalid_cursor"


class NotConfigured(ApiError):
    code = "not_configured"


class NotReady(ApiError):
    code = "not_ready"
