"""Shared test keys and configuration for adapter tests (no environment involved)."""

from __future__ import annotations

from adapters.config import load_partners_config
from points.partners import PartnersConfig
from points.signing import KeyRing, SigningKey

CONFIG: PartnersConfig = load_partners_config()


def make_keys(config: PartnersConfig = CONFIG) -> KeyRing:
    """One distinct 32-byte key per configured partner, under the configured key ids."""
    return KeyRing(
        SigningKey(p.signing_keys[0].key_id, p.id, bytes([index + 1]) * 32)
        for index, p in enumerate(config.partners.values())
    )


def make_environ(config: PartnersConfig = CONFIG) -> dict[str, str]:
    """The environment an entry point would see, with hex keys."""
    return {
        p.signing_keys[0].env: (bytes([index + 1]) * 32).hex()
        for index, p in enumerate(config.partners.values())
    }
