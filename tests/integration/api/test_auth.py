"""Bearer tokens: who may call, and that a customer only ever sees their own points."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr

from points.api.settings import JwtSettings
from points.db import make_engine
from points.ledger import Earn

from .conftest import (
    AUDIENCE,
    ISSUER,
    NOW,
    SECRET,
    Api,
    TestClient,
    assert_problem,
    bearer,
    build_app,
    token,
)

PROTECTED = [
    ("GET", "/v1/me/balance"),
    ("GET", "/v1/me/activity"),
    ("GET", "/v1/me/progress"),
    ("GET", "/v1/me/referral"),
    ("GET", "/v1/partners"),
    ("POST", "/v1/me/earning-preview"),
]
PREVIEW = {"amount_minor": 10_000, "currency": "CNY", "mcc": "5411", "merchant_id": "m-1",
           "channel": "online"}


def call(api: Api, method: str, path: str, headers: dict[str, str]) -> Any:
    if method == "POST":
        return api.client.post(path, headers={**headers, "Idempotency-Key": "k-1"},
                               json=PREVIEW)
    return api.client.get(path, headers=headers)


def _tamper(raw: str) -> str:
    """Change the payload's subject without re-signing."""
    header, payload, signature = raw.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "bob"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def _unsigned(sub: str) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    body = json.dumps({"sub": sub, "aud": "points-api", "iss": "https://auth.bank.example",
                       "exp": int(time.time()) + 600}).encode()
    return f"{header}.{base64.urlsafe_b64encode(body).decode().rstrip('=')}."


BAD_TOKENS: dict[str, Callable[[], str | None]] = {
    "missing": lambda: None,
    "not bearer": lambda: "Basic YWxpY2U6cGFzcw==",
    "empty bearer": lambda: "Bearer ",
    "garbage": lambda: "Bearer not.a.jwt",
    "expired": lambda: "Bearer " + token(expires_in_s=-120),
    "tampered": lambda: "Bearer " + _tamper(token("alice")),
    "wrong audience": lambda: "Bearer " + token(audience="another-api"),
    "wrong issuer": lambda: "Bearer " + token(issuer="https://evil.example"),
    "wrong secret": lambda: "Bearer " + token(secret="x" * 64),
    "alg none": lambda: "Bearer " + _unsigned("alice"),
    "HS512 not allowed": lambda: "Bearer " + token(algorithm="HS512"),
    "no expiry": lambda: "Bearer " + jwt.encode(
        {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER}, SECRET, algorithm="HS256"),
    "bad subject": lambda: "Bearer " + token(sub="alice/../bob"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_every_endpoint_refuses_a_bad_token_with_401_and_leaks_nothing(
    api: Api, case: str
) -> None:
    """Missing, expired, tampered, foreign and unsigned tokens all get the same 401 problem,
    with WWW-Authenticate, and no balance or customer data in the body."""
    api.apply([Earn("seed-1", "alice", 777, NOW.replace(year=2027))])
    value = BAD_TOKENS[case]()
    headers = {} if value is None else {"Authorization": value}
    for method, path in PROTECTED:
        response = call(api, method, path, headers)
        body = assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "777" not in response.text and "alice" not in response.text
        assert set(body) == {"type", "title", "status", "detail", "code"}


def test_an_expired_token_says_it_expired(api: Api) -> None:
    """The detail tells the app to refresh the token; other failures stay generic."""
    response = api.client.get("/v1/me/balance", headers=bearer(expires_in_s=-120))
    assert assert_problem(response, 401, "unauthenticated")["detail"] == "the token has expired"


def test_the_customer_is_the_tokens_subject_only(api: Api) -> None:
    """Alice's token reads Alice's points; Bob's reads Bob's; query parameters naming
    another customer change nothing."""
    api.apply([Earn("seed-a", "alice", 100, NOW.replace(year=2027)),
               Earn("seed-b", "bob", 250, NOW.replace(year=2027))])
    alice = api.client.get("/v1/me/balance", headers=bearer("alice"),
                           params={"customer_id": "bob"}).json()
    bob = api.get("/v1/me/balance", sub="bob").json()
    assert (alice["customer_id"], alice["available"]) == ("alice", 100)
    assert (bob["customer_id"], bob["available"]) == ("bob", 250)


@pytest.mark.parametrize("path", [
    "/v1/customers/bob/balance",
    "/v1/customers/bob/activity",
    "/v1/me/../customers/bob/balance",
    "/v1/bob/balance",
    "/v1/me/swaps/sw-of-bob",
])
def test_a_path_naming_another_customer_is_404_like_anything_unknown(
    api: Api, path: str
) -> None:
    """No route takes a customer id: anything naming one answers exactly as a path that does
    not exist, with or without a token."""
    api.apply([Earn("seed-b", "bob", 250, NOW.replace(year=2027))])
    unknown = api.client.get("/v1/nothing-here", headers=bearer("alice"))
    response = api.client.get(path, headers=bearer("alice"))
    assert_problem(response, 404, "not_found")
    assert response.json() == unknown.json()
    assert "250" not in response.text


def _keypair(kind: str, tmp_path: Path) -> tuple[Any, Path]:
    key: Any = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                if kind == "RS256" else ec.generate_private_key(ec.SECP256R1()))
    public = tmp_path / f"{kind}.pem"
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, public


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_public_key_tokens_are_verified_with_the_configured_key(
    sqlite_url: str, tmp_path: Path, algorithm: Literal["RS256", "ES256"]
) -> None:
    """RS256/ES256 tokens signed by the bank's key pass; an HS256 token made with the public
    key as secret (algorithm confusion) and a token from another key do not."""
    from points.migrate import upgrade

    upgrade(sqlite_url)
    other, _ = _keypair(algorithm, tmp_path)
    key, public = _keypair(algorithm, tmp_path)
    engine = make_engine(sqlite_url)
    settings = JwtSettings(algorithms=(algorithm,), public_key_file=public)
    app = build_app(sqlite_url, engine, jwt=settings)
    claims = {"sub": "carol", "aud": "points-api", "iss": "https://auth.bank.example",
              "exp": int(time.time()) + 600}
    good = jwt.encode(claims, key, algorithm=algorithm)
    forged = jwt.encode(claims, other, algorithm=algorithm)
    try:
        with TestClient(app) as client:
            ok = client.get("/v1/me/balance", headers={"Authorization": f"Bearer {good}"})
            assert ok.status_code == 200 and ok.json()["customer_id"] == "carol"
            bad = client.get("/v1/me/balance", headers={"Authorization": f"Bearer {forged}"})
            assert_problem(bad, 401, "unauthenticated")
            confused = _hs256_with_public_key(claims, public)
            response = client.get("/v1/me/balance",
                                  headers={"Authorization": f"Bearer {confused}"})
            assert_problem(response, 401, "unauthenticated")
    finally:
        engine.dispose()


def _hs256_with_public_key(claims: dict[str, Any], public: Path) -> str:
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = (b64(b'{"alg":"HS256","typ":"JWT"}') + "."
                     + b64(json.dumps(claims).encode()))
    mac = hmac.new(public.read_bytes(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def test_settings_refuse_mixed_or_keyless_algorithm_lists() -> None:
    """HMAC and public-key algorithms are never allowed together, and a key is required."""
    with pytest.raises(ValueError, match="mix"):
        JwtSettings(algorithms=("HS256", "RS256"), secret=SecretStr("x" * 40),
                    public_key_file=Path("k.pem"))
    with pytest.raises(ValueError, match="public_key_file"):
        JwtSettings(algorithms=("RS256",))
    with pytest.raises(ValueError, match="secret"):
        JwtSettings(algorithms=("HS256",))
