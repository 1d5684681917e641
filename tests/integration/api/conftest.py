"""The API against a real ledger (SQLite and PostgreSQL via ``migrated_url``), seeded through
the earning pipeline (``EarningService``) and ``points.ledger.apply_batch``."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, text

from points.api.app import create_app, load_partners
from points.api.settings import ApiSettings, JwtSettings, RateLimitSettings
from points.db import make_engine
from points.decoding import RawMessage
from points.earning import EarningService
from points.exchange.tables import partner_links
from points.ledger import Earn, Operation, apply_batch
from points.outbox import outbox_table
from points.rules import RuleSet, load_ruleset
from points.settings import Settings, TopicNames

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 under its TestClient; httpx is what the project pins.
    # The API tests import TestClient from here (so under this filter): an explicit re-export.
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient as TestClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RULES = HERE / "rules-api.yaml"
TOPICS = TopicNames()
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SECRET = "test-secret-for-api-tests-0123456789abcdef-0123456789abcdef-0123456789"
AUDIENCE = "points-api"
ISSUER = "https://auth.bank.example"
REFERRAL_SECRET = "5e" * 32  # hex, as POINTS_REFERRAL_SECRET is
PARTNERS = load_partners(ROOT / "config" / "partners.yaml")
# Partner signing keys for the exchange routes (outbox requests are signed when written).
KEYS_ENV = {p.signing_keys[0].env: f"{i:02x}" * 32 for i, p in
            enumerate(PARTNERS.partners.values(), start=1)}


class Clock:
    """The app's clock; tests move it (quote expiry, deadlines)."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def jwt_settings() -> JwtSettings:
    return JwtSettings(algorithms=("HS256",), secret=SecretStr(SECRET), audience=AUDIENCE,
                       issuer=ISSUER)


def api_settings(**overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "jwt": jwt_settings(),
        "referral_secret": SecretStr(REFERRAL_SECRET),
        "partners_config": ROOT / "config" / "partners.yaml",
        "rate_limit": RateLimitSettings(rate_per_s=1000, burst=1000),
    }
    values.update(overrides)
    return ApiSettings(**values)


def token(
    sub: str = "alice",
    *,
    expires_in_s: int = 3600,
    audience: str = AUDIENCE,
    issuer: str = ISSUER,
    secret: str = SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {"sub": sub, "aud": audience, "iss": issuer, "iat": now,
               "exp": now + expires_in_s, **claims}
    return jwt.encode(payload, secret, algorithm=algorithm)


def bearer(sub: str = "alice", **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **kwargs)}"}


class Feed:
    """Raw Kafka records with increasing offsets, as a partition would deliver them."""

    def __init__(self) -> None:
        self.offset = 0

    def raw(self, topic: str, body: dict[str, Any]) -> RawMessage:
        self.offset += 1
        return RawMessage(topic, 0, self.offset, str(body["customer_id"]).encode(),
                          json.dumps(body).encode())

    def purchase(self, event_id: str, customer: str, amount_minor: int, *, mcc: str = "5411",
                 at: datetime = NOW - timedelta(hours=3), merchant: str = "m-1",
                 partner_id: str | None = None) -> RawMessage:
        body: dict[str, Any] = {
            "event_type": "purchase", "event_id": event_id, "customer_id": customer,
            "amount_minor": amount_minor, "currency": "CNY", "mcc": mcc,
            "merchant_id": merchant, "channel": "card_present", "occurred_at": at.isoformat(),
        }
        if partner_id:
            body["partner_id"] = partner_id
        return self.raw(TOPICS.bank_transactions, body)

    def refund(self, event_id: str, customer: str, original: str, amount_minor: int
               ) -> RawMessage:
        return self.raw(TOPICS.bank_transactions, {
            "event_type": "refund", "event_id": event_id, "customer_id": customer,
            "original_event_id": original, "amount_minor": amount_minor, "currency": "CNY",
            "mcc": "5411", "merchant_id": "m-1", "channel": "card_present",
            "occurred_at": (NOW - timedelta(hours=1)).isoformat(),
        })

    def check_in(self, event_id: str, customer: str, at: datetime) -> RawMessage:
        return self.raw(TOPICS.customer_activity, {
            "event_type": "check_in", "event_id": event_id, "customer_id": customer,
            "occurred_at": at.isoformat(),
        })

    def profile(self, customer: str, *, birth_year: int = 1990) -> RawMessage:
        return self.raw(TOPICS.bank_customers, {
            "event_type": "customer_profile", "event_id": f"profile-{customer}-{self.offset}",
            "customer_id": customer, "segment": "mass", "status": "active",
            "joined_at": "2025-01-01T00:00:00+00:00", "birth_year": birth_year,
            "occurred_at": (NOW - timedelta(days=1)).isoformat(),
        })


@dataclass
class Api:
    """An app on a migrated database, a client, and ways to seed the ledger."""

    engine: Engine
    client: TestClient
    ruleset: RuleSet
    feed: Feed = field(default_factory=Feed)
    clock: Clock = field(default_factory=Clock)

    def earn(self, messages: Sequence[RawMessage]) -> None:
        service = EarningService(self.engine, self.ruleset, TOPICS, clock=lambda: NOW)
        outcome = service.process(messages)
        assert outcome.rejected == 0, outcome.rejected_reasons

    def apply(self, operations: Sequence[Operation]) -> None:
        with self.engine.begin() as conn:
            results = apply_batch(conn, operations, now=NOW)
        assert all(type(r).__name__ == "Applied" for r in results), results

    def get(self, path: str, sub: str = "alice", **params: Any) -> Any:
        return self.client.get(path, headers=bearer(sub), params=params or None)

    def post(self, path: str, body: Any, key: str | None, sub: str = "alice") -> Any:
        headers = bearer(sub)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post(path, headers=headers, json=body)

    def fund(self, customer: str, points: int) -> None:
        """Earn ``points`` for ``customer`` straight through the ledger."""
        self.apply([Earn(f"fund:{customer}:{points}:{self.feed.offset}", customer, points,
                         NOW + timedelta(days=365))])
        self.feed.offset += 1

    def link(self, customer: str, partner: str, member: str | None = None) -> None:
        """A membership the partner already confirmed, seeded in the table."""
        with self.engine.begin() as conn:
            conn.execute(partner_links.insert().values(
                customer_id=customer, partner_id=partner,
                partner_member_id=member or f"M-{customer}", status="linked",
                request_id=f"seed:{customer}:{partner}", referral_id=None, reason=None,
                updated_at=NOW))

    def outbox(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Outbox rows (what the relay would publish), decoded, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox_table).order_by(outbox_table.c.id)).mappings()
            out = [{**dict(r), "body": json.loads(r["message_value"])} for r in rows]
        return [r for r in out if event_type is None or r["body"].get("event_type") == event_type]

    def ledger_snapshot(self) -> dict[str, Any]:
        """Every ledger and rule-state row, to prove a request changed nothing."""
        out: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for table in ("ledger_entries", "ledger_legs", "ledger_balances", "ledger_lots",
                          "ledger_holds", "customer_rule_state", "earning_records",
                          "customer_profiles", "outbox", "partner_links", "swaps"):
                rows = conn.execute(text(f"SELECT * FROM {table}")).all()
                out[table] = sorted(repr(tuple(r)) for r in rows)
        return out


def build_app(url: str, engine: Engine, *, clock: Clock | None = None,
              environ: dict[str, str] | None = None, **overrides: Any) -> Any:
    ruleset = load_ruleset(RULES)
    return create_app(
        Settings(database={"url": url}),  # type: ignore[arg-type]
        api_settings(**overrides),
        engine=engine,
        ruleset=ruleset,
        partners=PARTNERS,
        clock=clock or (lambda: NOW),
        environ=KEYS_ENV if environ is None else environ,
    )


@pytest.fixture
def api(migrated_url: str) -> Iterator[Api]:
    engine = make_engine(migrated_url)
    clock = Clock()
    app = build_app(migrated_url, engine, clock=clock)
    with TestClient(app) as client:
        yield Api(engine=engine, client=client, ruleset=load_ruleset(RULES), clock=clock)
    engine.dispose()


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with the stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith("/" + code)
    assert body["title"] and body["detail"]
    return body
