"""Shared set-up for the gift tests: known customers with points and referral codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from points.exchange.tables import known_customers, referral_codes
from points.gifts.policy import GiftSettings
from points.ledger import AccountRef, Earn, apply_batch, verify
from points.ledger.queries import account_balance

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SOON = NOW + timedelta(days=40)
LATER = NOW + timedelta(days=300)
POLICY = GiftSettings(min_account_age_days=7)


def customer(engine: Engine, customer_id: str, *, points: int = 0, identity: str | None = None,
             known_days: int = 30, code: str | None = None) -> None:
    """A customer the bank has known for ``known_days``, with two lots (soon, later)."""
    with engine.begin() as conn:
        conn.execute(known_customers.insert().values(
            customer_id=customer_id, known_since=NOW - timedelta(days=known_days),
            evidence="test", identity_hash=identity or f"id-{customer_id}", updated_at=NOW))
        if code:
            conn.execute(referral_codes.insert().values(
                code=code, owner_kind="customer", owner_id=customer_id, created_at=NOW))
        if points:
            soon = points // 2
            apply_batch(conn, [
                Earn(f"seed-{customer_id}-a", customer_id, soon, SOON),
                Earn(f"seed-{customer_id}-b", customer_id, points - soon, LATER),
            ], now=NOW - timedelta(days=1))


def wallet(engine: Engine, customer_id: str) -> int:
    with engine.connect() as conn:
        return account_balance(conn, AccountRef.wallet("bank", customer_id))


def held(engine: Engine, customer_id: str) -> int:
    with engine.connect() as conn:
        return account_balance(conn, AccountRef.held("bank", customer_id))


def assert_clean(engine: Engine) -> None:
    with engine.connect() as conn:
        report = verify(conn)
    assert report.ok, report.violations
