"""Tables the earning pipeline keeps beside the ledger (migration 0003)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, String, Table, func

from points.db import metadata

__all__ = ["customer_profiles", "customer_rule_state", "earning_records", "parked_events"]

# The latest profile of each customer (from bank.customers), for segment targeting.
customer_profiles = Table(
    "customer_profiles",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("profile", JSON, nullable=False),
    Column("referral_code", String(32), nullable=True, unique=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Streaks, caps, counters, badges: written in the same transaction as the points they explain.
customer_rule_state = Table(
    "customer_rule_state",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("events_applied", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# What each earning event awarded, line by line, so a later refund claws back exactly that.
earning_records = Table(
    "earning_records",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("record", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Refunds that arrived before their purchase: applied right after the purchase is.
parked_events = Table(
    "parked_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("waiting_for", String(64), nullable=False, index=True),
    Column("customer_id", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
