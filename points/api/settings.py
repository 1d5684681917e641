"""Settings of the customer HTTP API, read from ``POINTS_API__*`` at the edge.

Kept apart from :class:`points.settings.Settings` (which the API reads too, for the ledger
URL, the rule file and Kafka) because the API fails closed: :class:`ApiSettings` requires the
token settings (``jwt``), which the workers and the CLI never have. The same prefix, nested
with ``__`` (e.g. ``POINTS_API__JWT__ALGORITHMS='["RS256"]'``,
``POINTS_API__RATE_LIMIT__RATE_PER_S=20``, ``POINTS_API__OPS_TOKEN``):

- :class:`ApiSharedSettings`: the part other processes read without the API's secrets (the
  demo prints the address; ``points-ledger api purge-idempotency-keys`` uses the retention);
- :class:`ApiSettings`: all of it, the operations dashboard's ``ops_*`` included
  (:class:`DashboardSettings`), read only by the API.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from points.referrals import parse_secret

__all__ = [
    "ApiSettings",
    "ApiSharedSettings",
    "DashboardSettings",
    "IdempotencySettings",
    "JwtSettings",
    "RateLimitSettings",
    "load_api_settings",
    "load_idempotency_settings",
]

ENV_PREFIX = "POINTS_API__"

Algorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "HS256", "HS384", "HS512",
]


class JwtSettings(BaseModel):
    """How bank-issued bearer tokens are checked. ``none`` is never accepted, and a
    configuration mixes no HMAC with public-key algorithms (algorithm confusion)."""

    algorithms: Annotated[tuple[Algorithm, ...], Field(min_length=1)] = ("RS256",)
    # PEM public key (RS*/PS*/ES*/EdDSA) of the bank's token issuer.
    public_key_file: Path | None = None
    # Shared secret for HS* (tests and local development only).
    secret: SecretStr | None = None
    audience: str = "points-api"
    issuer: str = "https://auth.bank.example"
    leeway_s: int = Field(default=30, ge=0, le=300)
    # Verified tokens are remembered (by their exact bytes) until they expire.
    cache_size: int = Field(default=50_000, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _keys(self) -> Self:
        hmac = {a for a in self.algorithms if a.startswith("HS")}
        if hmac and len(hmac) != len(self.algorithms):
            raise ValueError("jwt.algorithms must not mix HS* with public-key algorithms")
        if hmac and self.secret is None:
            raise ValueError("jwt.secret is required for HS* algorithms")
        if hmac and len(self.secret.get_secret_value() if self.secret else "") < 32:
            raise ValueError("jwt.secret must be at least 32 characters")
        if not hmac and self.public_key_file is None:
            raise ValueError("jwt.public_key_file is required for public-key algorithms")
        return self


class RateLimitSettings(BaseModel):
    """Per customer token bucket, in memory, per worker process."""

    enabled: bool = True
    rate_per_s: float = Field(default=20.0, gt=0, le=100_000)
    burst: int = Field(default=40, ge=1, le=100_000)
    # Buckets kept; the least recently used is dropped (its customer starts full again).
    max_customers: int = Field(default=200_000, ge=1, le=10_000_000)


class IdempotencySettings(BaseModel):
    """How long stored Idempotency-Key responses are kept (``POINTS_API__IDEMPOTENCY__*``).

    A key older than the retention may be deleted; after that the same key runs the request
    anew. The API purges in the background every ``purge_interval_s`` (0: never; then run
    ``points-ledger api purge-idempotency-keys`` from cron); both use ``retention_hours``.
    """

    retention_hours: int = Field(default=72, ge=1, le=24 * 366)
    purge_interval_s: int = Field(default=3600, ge=0, le=7 * 86_400)


class DashboardSettings(BaseModel):
    """``POINTS_API__OPS_*``: the operations dashboard's settings (``/ops``,
    :mod:`points.api.ops`), flat in the API's group."""

    # The operator token; unset: the dashboard is off (503).
    ops_token: SecretStr | None = None
    # Ledger verify runs at most this often (it scans the whole ledger).
    ops_verify_interval_s: float = Field(default=60.0, ge=1, le=86_400)
    ops_verify_timeout_s: float = Field(default=300.0, ge=1, le=3_600)
    # Kafka lag is asked at most this often, each probe bounded by the timeout.
    ops_lag_interval_s: float = Field(default=5.0, ge=0.5, le=3_600)
    ops_lag_timeout_s: float = Field(default=3.0, ge=0.2, le=60)
    # Points by rule and campaign cover the earning records written in this many hours
    # (0: all of them; each record costs a JSON parse, see points.ops_metrics).
    ops_points_window_h: float = Field(default=24.0, ge=0, le=24 * 3660)
    # Fast queries are shared by concurrent viewers for this long; points by rule (a JSON
    # aggregate over every earning record) for the slow one.
    ops_fast_ttl_s: float = Field(default=1.0, ge=0, le=600)
    ops_slow_ttl_s: float = Field(default=15.0, ge=0, le=3_600)
    # A login session ends after this long without a request (idle) and, used or not, this
    # long after the login (absolute).
    ops_session_idle_s: int = Field(default=8 * 3600, ge=60, le=30 * 86_400)
    ops_session_max_s: int = Field(default=12 * 3600, ge=60, le=90 * 86_400)
    # The cookie is always ``Secure`` when true; else only when the request came over HTTPS
    # (behind a TLS-terminating proxy: set this, or run uvicorn with --proxy-headers).
    ops_cookie_secure: bool = False

    @field_validator("ops_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 24:
            raise ValueError("ops_token must be at least 24 characters")
        return value


class ApiSharedSettings(BaseSettings):
    """The ``POINTS_API__*`` settings readable without the API's secrets: where
    ``python -m points.api`` listens (``POINTS_API__HOST``, ``POINTS_API__PORT``; the demo
    tells people the address) and how long Idempotency-Key responses are kept
    (``POINTS_API__IDEMPOTENCY__*``; the operations CLI purges them)."""

    # hide_input_in_errors: a rejected setting may be a secret; the error names the variable.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore",
        hide_input_in_errors=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    idempotency: IdempotencySettings = IdempotencySettings()

    @property
    def url(self) -> str:
        """The base URL a client on this machine uses (a wildcard host is reached locally)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


class ApiSettings(ApiSharedSettings, DashboardSettings):
    workers: int = Field(default=1, ge=1, le=64)
    # Database connections per worker process (reads are one or two short statements).
    pool_size: int = Field(default=10, ge=1, le=200)
    pool_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Secret behind customers' referral codes (points.referrals.referral_code), hex, from
    # POINTS_REFERRAL_SECRET: the very variable the partner worker reads, decoded the same way
    # (POINTS_API__REFERRAL_SECRET is accepted as an older name). Unset: 503.
    referral_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "POINTS_REFERRAL_SECRET", "POINTS_API__REFERRAL_SECRET", "referral_secret"
        ),
    )
    partners_config: Path = Path("config/partners.yaml")
    activity_page_max: int = Field(default=100, ge=1, le=1000)
    # Required: the API refuses to start without knowing how to check tokens (fail closed).
    jwt: JwtSettings
    rate_limit: RateLimitSettings = RateLimitSettings()

    @field_validator("referral_secret")
    @classmethod
    def _referral_secret_is_hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_secret(value.get_secret_value())  # raises, naming the variable
        return value

    def referral_secret_bytes(self) -> bytes | None:
        """The decoded referral secret, or None when unset."""
        if self.referral_secret is None:
            return None
        return parse_secret(self.referral_secret.get_secret_value())


def load_api_settings(**overrides: object) -> ApiSettings:
    """Build from the environment; keyword overrides win (tests, benchmarks)."""
    current = os.environ.get("POINTS_REFERRAL_SECRET")
    older = os.environ.get("POINTS_API__REFERRAL_SECRET")
    if current is not None and older is not None and current.strip() != older.strip():
        # Two secrets would mint codes onboarding cannot resolve: refuse to guess.
        raise ValueError("POINTS_REFERRAL_SECRET and POINTS_API__REFERRAL_SECRET differ: set "
                         "only POINTS_REFERRAL_SECRET (hex), the partner worker's secret")
    return ApiSettings(**overrides)  # type: ignore[arg-type]


def load_idempotency_settings(**overrides: object) -> IdempotencySettings:
    """``POINTS_API__IDEMPOTENCY__*`` from the environment, without the rest of the API's."""
    return ApiSharedSettings(**overrides).idempotency  # type: ignore[arg-type]
