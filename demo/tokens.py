"""The demo's development bearer tokens for the customer API (HS256, a per-data-folder secret).

A bank signs real tokens with its own key (RS256/ES256, see docs/api.md); this is only so a
person running the demo can call the API as one of the simulated customers.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import jwt
from sqlalchemy import Engine, select

from points.earning.tables import customer_rule_state

__all__ = ["api_env", "demo_token", "exchange_day_sample_customer", "ops_token"]

AUDIENCE = "points-api"
ISSUER = "https://auth.bank.example"


def _secret(data_dir: Path) -> str:
    path = data_dir / "demo" / "api-jwt-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def ops_token(data_dir: Path) -> str:
    """The operator token that opens the dashboard (/ops/login?token=...)."""
    path = data_dir / "demo" / "ops-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def api_env(data_dir: Path) -> dict[str, str]:
    return {
        "POINTS_API__OPS_TOKEN": ops_token(data_dir),
        "POINTS_API__JWT__ALGORITHMS": '["HS256"]',
        "POINTS_API__JWT__SECRET": _secret(data_dir),
        "POINTS_API__JWT__AUDIENCE": AUDIENCE,
        "POINTS_API__JWT__ISSUER": ISSUER,
    }


def demo_token(data_dir: Path, customer_id: str, lifetime_s: int = 8 * 3600) -> str:
    now = int(time.time())
    claims = {
        "sub": customer_id,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + lifetime_s,
    }
    return jwt.encode(claims, _secret(data_dir), algorithm="HS256")


def exchange_day_sample_customer(engine: Engine, prefix: str) -> str:
    with engine.connect() as conn:
        found = conn.execute(
            select(customer_rule_state.c.customer_id)
            .where(customer_rule_state.c.customer_id.like(f"{prefix}%"))
            .limit(1)
        ).scalar()
    return str(found or f"{prefix}-c0000000")
