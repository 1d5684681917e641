"""The API's own tables: stored responses of POST requests by Idempotency-Key (migration 0006)
and the operations dashboard's login sessions (migration 0011)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

from points.db import metadata

__all__ = ["idempotency_keys", "ops_sessions"]

# Keys are scoped by customer: one customer's key never meets another's request.
idempotency_keys = Table(
    "api_idempotency_keys",
    metadata,
    Column("customer_id", String(64), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("method", String(8), nullable=False),
    Column("route", String(200), nullable=False),
    # SHA-256 hex of method, route and the canonical JSON of the validated body
    Column("request_hash", String(64), nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("customer_id", "idempotency_key"),
    Index("ix_api_idempotency_keys_created_at", "created_at"),
)

# One row per /ops login. The cookie carries a random session id; only its SHA-256 is stored,
# so a copy of this table opens nothing. Rows live in the ledger database, so every API
# process (and every replica) sees a login and a logout at once.
ops_sessions = Table(
    "api_ops_sessions",
    metadata,
    Column("session_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Moved forward at most once a minute while the session is used (idle expiry).
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    # created_at + the absolute lifetime: no use extends it.
    Column("expires_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("session_hash"),
    Index("ix_api_ops_sessions_expires_at", "expires_at"),
)
