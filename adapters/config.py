"""Load ``config/partners.yaml`` and resolve the signing keys it references.

The file names environment variables, never secrets. Resolution takes the environment as an
argument: the entry point (simulator, worker) passes ``os.environ``; tests pass a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from points.partners import PartnersConfig
from points.signing import KeyRing, SigningKey

__all__ = ["DEFAULT_CONFIG_PATH", "MissingSigningKey", "load_partners_config", "resolve_keys"]

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "partners.yaml"


class MissingSigningKey(LookupError):
    """A configured key's environment variable is unset or not a hex key of 32+ bytes."""


def load_partners_config(path: Path = DEFAULT_CONFIG_PATH) -> PartnersConfig:
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return PartnersConfig.model_validate(data)


def resolve_keys(
    config: PartnersConfig,
    environ: Mapping[str, str],
    *,
    partner_ids: list[str] | None = None,
) -> KeyRing:
    """Every configured key of the chosen partners (default: all), from ``environ``.

    The secret is hex-encoded in the variable (``python -c "import secrets;
    print(secrets.token_hex(32))"``). A missing first (signing) key is an error; a missing
    older key is skipped, so a rotated-out key can simply be unset.
    """
    keys: list[SigningKey] = []
    for partner_id in partner_ids or list(config.partners):
        partner = config.get(partner_id)
        for position, ref in enumerate(partner.signing_keys):
            raw = environ.get(ref.env)
            if raw is None:
                if position == 0:
                    raise MissingSigningKey(
                        f"partner {partner_id}: environment variable {ref.env} "
                        f"(key {ref.key_id}) is not set"
                    )
                continue
            try:
                secret = bytes.fromhex(raw.strip())
                keys.append(SigningKey(ref.key_id, partner_id, secret))
            except ValueError as exc:
                raise MissingSigningKey(
                    f"partner {partner_id}: {ref.env} must hold a hex key of 32+ bytes ({exc})"
                ) from None
    return KeyRing(keys)
