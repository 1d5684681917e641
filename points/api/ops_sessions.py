"""Login sessions of the operations dashboard (``/ops``), one per login, in the database.

Each ``/ops/login`` with the operator token starts a session: a random 256-bit id goes to the
browser in the cookie, and only its SHA-256 is stored (``api_ops_sessions``, migration 0011),
so the table alone opens nothing. A session ends

- when it has not been used for ``idle_s`` (default 8 h),
- ``max_s`` after the login whatever its use (default 12 h),
- at ``/ops/logout`` (the row is deleted: the cookie is dead everywhere at once).

The rows live in the ledger database, so several API processes and replicas share them: a
login on one process opens the page on another, a logout on one ends it on all. Expired rows
are deleted at the next login. Use is recorded at most once a minute (``last_seen_at``), so a
dashboard polling every 2 s costs one read per poll, not a write.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Engine, delete, or_, select, update

from points.api.tables import ops_sessions
from points.exchange.store import aware

__all__ = ["OpsSessions"]

# What secrets.token_urlsafe(32) makes; anything else is not one of ours and is not looked up.
_SESSION_ID = re.compile(r"^[A-Za-z0-9_\-]{43}$")
_TOUCH_EVERY: Final = timedelta(minutes=1)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class OpsSessions:
    def __init__(self, engine: Engine, *, idle_s: int, max_s: int,
                 clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._idle = timedelta(seconds=idle_s)
        self._max = timedelta(seconds=max_s)
        self._clock = clock

    @property
    def cookie_max_age_s(self) -> int:
        """The browser may drop the cookie when the session cannot live any longer."""
        return int(self._max.total_seconds())

    def start(self) -> str:
        """A new session; its id (for the cookie)."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(delete(ops_sessions).where(or_(
                ops_sessions.c.expires_at <= now,
                ops_sessions.c.last_seen_at <= now - self._idle,
            )))
            conn.execute(ops_sessions.insert().values(
                session_hash=_digest(session_id), created_at=now, last_seen_at=now,
                expires_at=now + self._max,
            ))
        return session_id

    def is_open(self, session_id: str) -> bool:
        """Whether the session exists and has expired neither way; records its use."""
        if not _SESSION_ID.match(session_id):
            return False
        key = _digest(session_id)
        now = self._clock()
        with self._engine.begin() as conn:
            row = conn.execute(
                select(ops_sessions.c.last_seen_at, ops_sessions.c.expires_at)
                .where(ops_sessions.c.session_hash == key)
            ).first()
            if row is None:
                return False
            last_seen, expires_at = aware(row.last_seen_at), aware(row.expires_at)
            if now >= expires_at or now - last_seen >= self._idle:
                conn.execute(delete(ops_sessions).where(ops_sessions.c.session_hash == key))
                return False
            if now - last_seen >= _TOUCH_EVERY:
                conn.execute(update(ops_sessions)
                             .where(ops_sessions.c.session_hash == key)
                             .values(last_seen_at=now))
        return True

    def end(self, session_id: str) -> None:
        """Revoke the session (logout); an unknown id is no error."""
        if not _SESSION_ID.match(session_id):
            return
        with self._engine.begin() as conn:
            conn.execute(delete(ops_sessions)
                         .where(ops_sessions.c.session_hash == _digest(session_id)))
