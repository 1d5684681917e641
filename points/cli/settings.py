"""Settings of the operations CLI, read from ``POINTS_OPS__*`` at the edge (never at import).

Kept here rather than in :mod:`points.settings` while the CLI is the only reader; the names
are the ones a nested ``ops`` group in the main Settings would have, so moving it there later
changes no environment variable.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from points.ledger import AMOUNT_MAX

__all__ = ["OpsSettings", "load_ops_settings"]


class OpsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POINTS_OPS__", extra="ignore")

    # An adjustment moving more points than this (either sign) waits for a second operator.
    approval_threshold: int = Field(default=10_000, ge=0, le=AMOUNT_MAX)


def load_ops_settings(**overrides: object) -> OpsSettings:
    return OpsSettings(**overrides)  # type: ignore[arg-type]
