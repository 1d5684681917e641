"""docs/openapi.json is the document the code generates, and it documents every route."""

from __future__ import annotations

import json

from points.api.openapi import DEFAULT_PATH, render


def test_published_openapi_document_is_up_to_date() -> None:
    """Regenerate with `python -m points.api.openapi` when this fails."""
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(), (
        "docs/openapi.json is stale: run `python -m points.api.openapi`")


def test_every_customer_route_documents_its_bearer_auth_and_problems() -> None:
    """Customer routes declare the bearer scheme and problem-details error responses."""
    doc = json.loads(render())
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, item in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for operation in item.values():
            assert operation["security"] == [{"HTTPBearer": []}], path
            assert "application/problem+json" in operation["responses"]["401"]["content"]
