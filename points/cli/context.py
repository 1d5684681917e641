"""What every command gets from the global options: settings, the database, the output.

Built by the application callback for each invocation; the engine is made on first use and
disposed when the invocation ends, so ``--help`` and ``rules validate`` never connect.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

import typer
from sqlalchemy import Connection, Engine

from points.cli.errors import BadInput
from points.cli.output import Output
from points.db import make_engine
from points.ledger.model import Reason
from points.ledger.service import KEY_LENGTH_MAX
from points.settings import Settings

__all__ = [
    "Ops",
    "correction_reason",
    "new_key",
    "ops_of",
    "parse_moment",
    "require_operator",
]

OPERATOR_LENGTH_MAX: Final = 64  # adjustment_requests.requested_by / decided_by
# A small allowance for clocks: an as-of "now" taken on another machine is not the future.
FUTURE_SKEW: Final = timedelta(minutes=5)


@dataclass
class Ops:
    database_url: str
    program: str
    output: Output
    settings: Settings
    debug: bool = False
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return self.output.json_mode

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def read(self) -> Connection:
        """A connection for reading (use as a context manager)."""
        return self.engine().connect()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def lot_expiry(self, start: datetime) -> datetime:
        """Expiry of a lot credited by an operator: the configured lifetime, at midnight UTC.

        A whole day, not an instant, so that retrying an adjustment with the same key on the
        same day is a replay (the expiry is part of the request's fingerprint).
        """
        day = start.astimezone(UTC).date() + timedelta(days=self.settings.rules.lot_lifetime_days)
        return datetime.combine(day, time(0), tzinfo=UTC)


def ops_of(ctx: typer.Context) -> Ops:
    obj = ctx.find_object(Ops)
    if obj is None:  # pragma: no cover - the callback always sets it
        raise RuntimeError("the points-ledger callback did not run")
    return obj


def require_operator(name: str | None) -> str:
    value = (name or "").strip()
    if not value:
        raise BadInput("--operator is required: every write records who made it")
    if len(value) > OPERATOR_LENGTH_MAX:
        raise BadInput(f"--operator is longer than {OPERATOR_LENGTH_MAX} characters")
    return value


def require_text(name: str, value: str | None) -> str:
    text = (value or "").strip()
    if not text:
        raise BadInput(f"{name} must not be empty")
    return text


def correction_reason(operator: str | None, reason: str | None) -> Reason:
    """What a correction is recorded with: who made it and why (both required)."""
    return Reason(operator=require_operator(operator), note=require_text("--reason", reason))


def new_key(command: str, given: str | None) -> str:
    """The caller's idempotency key, or a fresh one for this command (printed back)."""
    if given is not None:
        if not given or len(given) > KEY_LENGTH_MAX:
            raise BadInput(f"--key must be 1..{KEY_LENGTH_MAX} characters")
        return given
    return f"ops:{command}:{uuid.uuid4().hex}"


def run_key(*parts: str) -> str:
    """A deterministic key for a run (expiry) that fits the ledger's key limit."""
    key = ":".join(parts)
    if len(key) <= KEY_LENGTH_MAX:
        return key
    digest = uuid.uuid5(uuid.NAMESPACE_URL, key).hex
    return f"{key[: KEY_LENGTH_MAX - len(digest) - 1]}~{digest}"


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_moment(option: str, value: str | None, *, default: datetime | None = None,
                 allow_future: bool = False) -> datetime:
    """An ISO 8601 date or date-time; a date means 00:00 UTC, a time without offset is UTC."""
    if value is None:
        if default is None:
            raise BadInput(f"{option} is required")
        moment = default
    else:
        try:
            if _DATE_ONLY.match(value):
                moment = datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
            else:
                moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadInput(f"{option} {value!r} is not an ISO 8601 date or date-time") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    if not allow_future and moment > Ops.now() + FUTURE_SKEW:
        raise BadInput(f"{option} {moment.isoformat()} is in the future")
    return moment
