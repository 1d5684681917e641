"""Bearer tokens issued by the bank: signature, expiry, audience and issuer checked.

The customer is the token's ``sub`` and nothing else: no path, query or body names a customer.
Allowed algorithms come from configuration only (never from the token's header), ``none`` is
never allowed, and HMAC and public-key algorithms are never mixed (see ``JwtSettings``).

A verified token is remembered by its exact bytes until it expires, so a client sending the
same token again skips the signature check; a changed byte is a different token and is
verified from scratch. Expiry is checked on every request, cached or not.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from points.api.errors import Unauthenticated
from points.api.settings import JwtSettings

__all__ = ["CUSTOMER_ID_PATTERN", "TokenVerifier"]

CUSTOMER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")  # points.events.CustomerId
_TOKEN_MAX_CHARS = 8192


def _public_key(pem: bytes) -> Any:
    """The key parsed once: PyJWT parses PEM bytes again on every token (profiled: a tenth of
    a swap quote's CPU, where each new customer's token is verified once); a parsed key it
    takes as it is. Bytes that do not parse stay bytes (PyJWT then says what is wrong)."""
    try:
        return serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return pem


class TokenVerifier:
    def __init__(
        self, settings: JwtSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._algorithms = list(settings.algorithms)
        self._key: Any
        if settings.secret is not None and all(a.startswith("HS") for a in self._algorithms):
            self._key = settings.secret.get_secret_value().encode()
        else:
            assert settings.public_key_file is not None
            self._key = _public_key(settings.public_key_file.read_bytes())
        self._audience = settings.audience
        self._issuer = settings.issuer
        self._leeway = settings.leeway_s
        self._clock = clock
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._cache_size = settings.cache_size
        self._jwt = jwt.PyJWT(
            options={"require": ["exp", "sub", "aud", "iss"], "verify_signature": True}
        )

    def customer_id(self, authorization: str | None) -> str:
        """The customer a ``Bearer`` header stands for; raises :class:`Unauthenticated`."""
        if not authorization:
            raise Unauthenticated("a bearer token is required")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > _TOKEN_MAX_CHARS:
            raise Unauthenticated("a bearer token is required")
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            subject, expires_at = cached
            if now < expires_at + self._leeway:
                return subject
            self._cache.pop(token, None)
            raise Unauthenticated("the token has expired")
        subject, expires_at = self._verify(token, now)
        if self._cache_size:
            self._cache[token] = (subject, expires_at)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return subject

    def _verify(self, token: str, now: float) -> tuple[str, float]:
        try:
            claims = self._jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.PyJWTError:
            # One message for every other failure: which check failed is not the caller's
            # business (and would help someone forging tokens).
            raise Unauthenticated("the token is not valid") from None
        subject = claims.get("sub")
        expires_at = claims.get("exp")
        if not isinstance(subject, str) or not CUSTOMER_ID_PATTERN.match(subject):
            raise Unauthenticated("the token is not valid")
        if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
            raise Unauthenticated("the token is not valid")
        if now >= float(expires_at) + self._leeway:  # pragma: no cover - PyJWT checked it
            raise Unauthenticated("the token has expired")
        return subject, float(expires_at)
