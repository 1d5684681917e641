"""RFC 9457 problem details: the ONE place where error codes become HTTP statuses.

Every error response of the API is ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail`` and ``code`` (stable, from :mod:`points.errors` and its branches).
A code missing from :data:`STATUS_BY_CODE` falls back by its class: a refused request 422,
anything else 500 (and is logged).
"""

from __future__ import annotations

import email.message
import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from points.api.errors import ApiError, IdempotencyKeyRequired, InvalidJson, ValidationFailed
from points.errors import PointsError, RequestRejected

__all__ = [
    "PROBLEM_JSON",
    "STATUS_BY_CODE",
    "TYPE_BASE",
    "error_response",
    "install_problem_handlers",
    "problem_body",
    "problem_response",
    "status_for",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://points-exchange.example/problems/"

#: code -> (HTTP status, title). Titles are the same for every occurrence of a code.
STATUS_BY_CODE: dict[str, tuple[int, str]] = {
    # the edge (points.api.errors)
    "unauthenticated": (401, "Authentication required"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "validation_error": (422, "Invalid request"),
    "invalid_json": (400, "Body is not JSON"),
    "idempotency_key_required": (400, "Idempotency-Key header required"),
    "idempotency_key_reused": (422, "Idempotency-Key reused for another request"),
    "rate_limited": (429, "Too many requests"),
    "invalid_cursor": (422, "Invalid pagination cursor"),
    "not_configured": (503, "Not available"),
    "not_ready": (503, "Not ready"),
    "internal_error": (500, "Internal error"),
    # the ledger (points.errors)
    "request_rejected": (422, "Request refused"),
    "invalid_amount": (422, "Invalid amount"),
    "invalid_request": (422, "Invalid request"),
    "insufficient_points": (409, "Insufficient points"),
    "unknown_entry": (404, "Unknown entry"),
    "hold_not_found": (404, "Hold not found"),
    "hold_already_resolved": (409, "Hold already resolved"),
    "hold_expired": (409, "Hold expired"),
    "not_reversible": (409, "Not reversible"),
    "already_reversed": (409, "Already reversed"),
    "clawback_exceeds_earning": (409, "Clawback exceeds earning"),
    "idempotency_conflict": (409, "Idempotency key conflict"),
    "limit_exceeded": (422, "Limit exceeded"),
    "ledger_invariant_violated": (500, "Internal error"),
    # the rules engine (points.rules.errors)
    "rules_error": (422, "Rules refused the request"),
    "not_an_earning_event": (422, "Not an earning event"),
    # partner programs (points.partners)
    "partner_error": (422, "Partner program refused the request"),
    "unknown_partner": (404, "Unknown partner program"),
    "partner_unavailable": (503, "Partner program unavailable"),
    "inbound_not_offered": (422, "Inbound swaps not offered"),
    "swap_below_minimum": (422, "Swap below minimum"),
    "swap_above_maximum": (422, "Swap above maximum"),
    "not_a_multiple": (422, "Swap amount not a multiple of the step"),
    "daily_limit_exceeded": (409, "Daily swap limit exceeded"),
    "yearly_limit_exceeded": (409, "Yearly swap limit exceeded"),
    "quote_expired": (409, "Quote expired"),
    "rate_changed": (409, "Rate changed"),
    "quote_mismatch": (422, "Quote does not match the request"),
    "member_not_linked": (409, "Partner membership not linked"),
    "membership_already_linked": (409, "Partner membership linked to another customer"),
    # gifts and red packets (points.gifts.desk): the detail starts with the reason code
    "gift_refused": (409, "Gift or packet refused"),
    # the exchange's swaps desk (points.exchange.swap_desk)
    "exchange_error": (422, "Exchange refused the request"),
    "unknown_quote": (404, "Unknown quote"),
    "swap_not_found": (404, "Swap not found"),
    "swap_not_cancellable": (409, "Swap can no longer be cancelled"),
    # referrals (points.referrals)
    "referral_error": (422, "Referral refused"),
    "invalid_referral_code": (422, "Invalid referral code"),
}


def status_for(error: PointsError) -> tuple[int, str, str]:
    """(status, title, code) for an error; unknown codes fall back by class."""
    found = STATUS_BY_CODE.get(error.code)
    if found is not None:
        return found[0], found[1], error.code
    if isinstance(error, RequestRejected | ApiError):
        return 422, "Request refused", error.code
    log.error("no HTTP status for error code %r (%s)", error.code, type(error).__name__)
    return 500, "Internal error", "internal_error"


def problem_body(
    code: str, status: int, title: str, detail: str, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return body


def problem_response(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    known_status, title = STATUS_BY_CODE.get(code, (500, "Internal error"))
    status = status or known_status
    body = problem_body(code, status, title, detail, **extra)
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def error_response(error: PointsError) -> Response:
    status, title, code = status_for(error)
    detail = error.message if status < 500 else "the request could not be completed"
    extra: dict[str, Any] = {}
    if isinstance(error, ValidationFailed) and error.errors:
        extra["errors"] = error.errors
    body = problem_body(code, status, title, detail, **extra)
    headers = error.headers if isinstance(error, ApiError) else None
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the input back (it may be large or carry the token); location, message, type.
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
         "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]


def _is_json(content_type: str | None) -> bool:
    """application/json or +json; a body without Content-Type is not read as JSON (FastAPI's
    strict content type)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json"))


def _not_json(request: Request, errors: list[dict[str, Any]]) -> InvalidJson | None:
    """The body is not a JSON document (malformed, or sent as another media type): 400
    ``invalid_json``, whatever else is wrong with the request."""
    if any(e["type"] == "json_invalid" for e in errors):
        return InvalidJson("the request body is not valid JSON")
    if any(e["loc"] == ["body"] and e["type"] != "missing" for e in errors) and not _is_json(
        request.headers.get("content-type")
    ):
        return InvalidJson("send the request body as JSON, with Content-Type: application/json")
    return None


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (for ``Allow`` on a 405)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_problem_handlers(
    app: FastAPI, *, authenticate: Callable[[Request], object] | None = None
) -> None:
    """Route every error the app can produce through problem details. ``authenticate``
    (raises :class:`points.api.errors.Unauthenticated`) runs before a body problem is told:
    the framework parses the body before the route's dependencies, and a caller without a
    valid token learns nothing about their body."""

    async def on_points_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PointsError)
        status, _, _ = status_for(exc)
        if status >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        if authenticate is not None:
            try:
                authenticate(request)
            except PointsError as refused:
                return error_response(refused)
        not_json = _not_json(request, errors)
        if not_json is not None:
            return error_response(not_json)
        for e in errors:
            if e["loc"][:2] == ["header", "Idempotency-Key"] and e["type"] == "missing":
                return error_response(
                    IdempotencyKeyRequired("POST requests need an Idempotency-Key header")
                )
        return error_response(ValidationFailed("the request is not valid", errors))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        if code is None:
            code = "validation_error" if exc.status_code < 500 else "internal_error"
        detail = {
            "not_found": "no such resource",
            "method_not_allowed": "method not allowed on this resource",
        }.get(code, str(exc.detail))
        headers = dict(exc.headers or {})
        if code == "method_not_allowed":
            # The router names only the first route that matched the path.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(code, detail, status=exc.status_code, headers=headers)

    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return problem_response("internal_error", "the request could not be completed")

    app.add_exception_handler(PointsError, on_points_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
