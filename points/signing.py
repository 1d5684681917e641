"""HMAC-SHA256 signatures on partner messages: sign, and verify with a replay window.

Standard library only. A partner (or the bank, on a partner's requests topic) signs the exact
bytes of the Kafka message value. The signature travels in three headers, never in the payload:

- ``x-key-id``    which shared key signed (keys rotate: several may be live per partner)
- ``x-signed-at`` Unix time in whole seconds, ASCII decimal
- ``x-signature`` lowercase hex of ``HMAC-SHA256(key, b"<x-signed-at>." + value)``

Binding the timestamp into the MAC makes a replay outside the window detectable; binding the
exact value bytes (not a re-serialisation) means any change of a single byte fails.

Verification returns a :class:`Verification` whose ``verdict`` is a stable reason code, used as
the DLQ reason for everything but ``valid``. Checks run in this order, so each code means one
thing:

=================  ====================================================================
``unsigned``       one of the three headers is missing
``unknown_key``    the key id names no live key
``bad_signature``  malformed headers, or the MAC does not match (tampered or wrong key)
``wrong_topic``    authentic, but the key's partner does not own the topic it arrived on
``stale``          authentic, but signed outside the replay window (either direction)
``valid``          everything holds
=================  ====================================================================
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

__all__ = [
    "KEY_ID_HEADER",
    "KEY_SIZE_MIN_BYTES",
    "REPLAY_WINDOW_S",
    "SIGNATURE_HEADER",
    "SIGNED_AT_HEADER",
    "Headers",
    "KeyRing",
    "SigningKey",
    "Verdict",
    "Verification",
    "compute_signature",
    "partner_events_topic",
    "partner_requests_topic",
    "sign",
    "signing_input",
    "verify",
]

SIGNATURE_HEADER: Final = "x-signature"
KEY_ID_HEADER: Final = "x-key-id"
SIGNED_AT_HEADER: Final = "x-signed-at"
REPLAY_WINDOW_S: Final = 300
KEY_SIZE_MIN_BYTES: Final = 32
"""HMAC-SHA256 keys shorter than the hash output weaken it; refuse them."""

Headers = tuple[tuple[str, bytes], ...]
"""Kafka record headers as the Kafka client produces and consumes them: (name, bytes) pairs."""


class Verdict(StrEnum):
    VALID = "valid"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    STALE = "stale"
    WRONG_TOPIC = "wrong_topic"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One shared secret of one partner. ``repr`` never shows the secret."""

    key_id: str
    partner_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.key_id or not self.partner_id:
            raise ValueError("a signing key needs a key id and a partner id")
        if len(self.secret) < KEY_SIZE_MIN_BYTES:
            raise ValueError(
                f"signing key {self.key_id!r} is {len(self.secret)} bytes; "
                f"at least {KEY_SIZE_MIN_BYTES} are required"
            )


class KeyRing:
    """The live keys, by key id. Several keys per partner allow rotation without downtime."""

    def __init__(self, keys: Iterable[SigningKey] = ()) -> None:
        self._by_id: dict[str, SigningKey] = {}
        for key in keys:
            if key.key_id in self._by_id:
                raise ValueError(f"duplicate signing key id {key.key_id!r}")
            self._by_id[key.key_id] = key

    def get(self, key_id: str) -> SigningKey | None:
        return self._by_id.get(key_id)

    def for_partner(self, partner_id: str) -> tuple[SigningKey, ...]:
        return tuple(k for k in self._by_id.values() if k.partner_id == partner_id)

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass(frozen=True, slots=True)
class Verification:
    verdict: Verdict
    detail: str
    key_id: str | None = None
    partner_id: str | None = None
    signed_at: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VALID


def partner_events_topic(partner_id: str) -> str:
    """Where a partner publishes (the default topic rule for verification)."""
    return f"partner.{partner_id}.events"


def partner_requests_topic(partner_id: str) -> str:
    """Where the bank publishes to a partner."""
    return f"partner.{partner_id}.requests"


def _unix_seconds(value: datetime | int) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("signing time must be timezone-aware")
        return int(value.timestamp())
    return value


def signing_input(signed_at: int, body: bytes) -> bytes:
    """The exact bytes the MAC covers: ``b"<unix seconds>." + body``."""
    return str(signed_at).encode("ascii") + b"." + body


def compute_signature(secret: bytes, signed_at: int, body: bytes) -> str:
    return hmac.new(secret, signing_input(signed_at, body), hashlib.sha256).hexdigest()


def sign(body: bytes, key: SigningKey, signed_at: datetime | int) -> Headers:
    """The three signature headers for ``body`` (append them to any other headers)."""
    at = _unix_seconds(signed_at)
    return (
        (KEY_ID_HEADER, key.key_id.encode("ascii")),
        (SIGNED_AT_HEADER, str(at).encode("ascii")),
        (SIGNATURE_HEADER, compute_signature(key.secret, at, body).encode("ascii")),
    )


def _single_header(headers: Sequence[tuple[str, bytes]], name: str) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


def verify(
    body: bytes,
    headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes],
    *,
    topic: str,
    keys: KeyRing,
    now: datetime,
    window_s: int = REPLAY_WINDOW_S,
    topic_for: Callable[[str], str] = partner_events_topic,
) -> Verification:
    """Check a message's signature, its key's ownership of ``topic``, and its age.

    ``topic_for`` maps the signing key's partner id to the one topic that partner may publish
    on (tests and staging prefix topic names; the simulator verifies requests topics).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    found = {name: _single_header(pairs, name) for name in _REQUIRED}
    missing = [name for name, values in found.items() if not values]
    if missing:
        return Verification(Verdict.UNSIGNED, f"missing header(s): {', '.join(missing)}")
    repeated = [name for name, values in found.items() if len(values) > 1]
    if repeated:
        # Two signatures (or key ids) make the message ambiguous; never pick one.
        return Verification(Verdict.BAD_SIGNATURE, f"repeated header(s): {', '.join(repeated)}")

    try:
        key_id = found[KEY_ID_HEADER][0].decode("ascii")
        signed_at_text = found[SIGNED_AT_HEADER][0].decode("ascii")
        signature = found[SIGNATURE_HEADER][0].decode("ascii")
    except UnicodeDecodeError:
        return Verification(Verdict.BAD_SIGNATURE, "signature headers are not ASCII")

    key = keys.get(key_id)
    if key is None:
        return Verification(Verdict.UNKNOWN_KEY, f"no live key with id {key_id!r}", key_id)
    if not signed_at_text.isdigit() or len(signed_at_text) > 12:
        return Verification(
            Verdict.BAD_SIGNATURE, f"x-signed-at {signed_at_text!r} is not Unix seconds", key_id
        )
    signed_at = int(signed_at_text)
    expected = compute_signature(key.secret, signed_at, body)
    # Constant-time: the comparison time must not reveal how many leading characters match.
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        return Verification(
            Verdict.BAD_SIGNATURE, "signature does not match the message", key_id, key.partner_id
        )
    owned = topic_for(key.partner_id)
    if topic != owned:
        return Verification(
            Verdict.WRONG_TOPIC,
            f"key {key_id!r} belongs to partner {key.partner_id!r}, whose topic is {owned!r}, "
            f"but the message arrived on {topic!r}",
            key_id,
            key.partner_id,
            signed_at,
        )
    age_s = int(now.timestamp()) - signed_at
    if abs(age_s) > window_s:
        return Verification(
            Verdict.STALE,
            f"signed {age_s}s before now; the window is +/-{window_s}s",
            key_id,
            key.partner_id,
            signed_at,
        )
    return Verification(Verdict.VALID, "ok", key_id, key.partner_id, signed_at)


_REQUIRED: Final = (KEY_ID_HEADER, SIGNED_AT_HEADER, SIGNATURE_HEADER)
