"""The API's own table (migration 0006): stored responses of POST requests by Idempotency-Key."""

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

__all__ = ["idempotency_keys"]

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
