"""Problem details as docs/api.md promises them (issue 12, finding 9): a body that is not JSON
is ``400 invalid_json`` (after the token, before anything else), a 405 names every method
the path serves in ``Allow``, and every code the API can answer is listed in docs/api.md."""

from __future__ import annotations

import re
from typing import Any

import pytest

from points.api.problems import STATUS_BY_CODE

from .conftest import ROOT, Api, assert_problem, bearer

POSTS = ["/v1/me/earning-preview", "/v1/me/links", "/v1/me/swaps/quote", "/v1/me/swaps"]


def post_raw(api: Api, path: str, body: bytes, *, content_type: str | None = "application/json",
             key: str | None = "k-raw", token: bool = True) -> Any:
    headers = bearer() if token else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    if content_type is not None:
        headers["Content-Type"] = content_type
    return api.client.post(path, content=body, headers=headers)


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("key", ["k-1", None])
def test_a_body_that_is_not_json_is_400_invalid_json(
    api: Api, path: str, key: str | None
) -> None:
    """Malformed JSON, with or without an Idempotency-Key: always 400 invalid_json (the body
    is told first), and nothing is stored."""
    before = api.ledger_snapshot()
    response = post_raw(api, path, b'{"partner_id": "ridehail",', key=key)
    body = assert_problem(response, 400, "invalid_json")
    assert "not valid JSON" in body["detail"]
    assert api.ledger_snapshot() == before


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain",
                                          None])
@pytest.mark.parametrize("key", ["k-1", None])
def test_a_body_sent_as_another_media_type_is_400_invalid_json(
    api: Api, content_type: str | None, key: str | None
) -> None:
    """curl -d sends a form by default, and a body without Content-Type is not read as JSON:
    the answer says to send JSON with its Content-Type, rather than a schema error about a
    'dictionary' (or a missing key the caller would fix first, only to meet this next)."""
    response = post_raw(api, "/v1/me/links", b'{"partner_id": "ridehail"}',
                        content_type=content_type, key=key)
    body = assert_problem(response, 400, "invalid_json")
    assert "Content-Type: application/json" in body["detail"]


def test_well_formed_json_that_breaks_the_schema_is_still_422(api: Api) -> None:
    """The line between the two: parseable JSON of the wrong shape is 422 validation_error."""
    for body in (b"[1, 2]", b'"links"', b'{"partner_id": 7}'):
        assert_problem(post_raw(api, "/v1/me/links", body), 422, "validation_error")


def test_without_a_valid_token_a_bad_body_is_401(api: Api) -> None:
    """The token comes first: a caller without one learns nothing about their body."""
    for body in (b"{not json", b'{"partner_id": 7}'):
        response = post_raw(api, "/v1/me/links", body, token=False)
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/v1/me/links", "GET, POST"),
    ("DELETE", "/v1/me/links", "GET, POST"),
    ("PATCH", "/v1/me/swaps", "GET, POST"),
    ("DELETE", "/v1/me/balance", "GET"),
    ("GET", "/v1/me/earning-preview", "POST"),
    ("POST", "/v1/me/swaps/sw-1", "GET"),
])
def test_a_405_lists_every_method_the_path_serves(
    api: Api, method: str, path: str, allowed: str
) -> None:
    """Allow names every method some route serves at that path, not only the first route's."""
    response = api.client.request(method, path, headers=bearer())
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed
    for listed in allowed.split(", "):
        kwargs: dict[str, Any] = {"headers": {**bearer(), "Idempotency-Key": "allow-probe"}}
        if listed == "POST":
            kwargs["json"] = {}
        assert api.client.request(listed, path, **kwargs).status_code != 405


def test_every_problem_code_is_listed_in_the_api_docs() -> None:
    """Each code of STATUS_BY_CODE appears in docs/api.md's error table, with its status."""
    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Errors"):]
    rows = {}
    for status, codes in re.findall(r"^\| (\d{3}) \| (.+?) \|", section, flags=re.MULTILINE):
        for code in re.findall(r"`([a-z_]+)`", codes):
            rows[code] = int(status)
    missing = {code: status for code, (status, _) in STATUS_BY_CODE.items()
               if rows.get(code) != status}
    assert not missing, f"not in docs/api.md's error table with this status: {missing}"
