"""Publish the API's OpenAPI document: ``python -m points.api.openapi [--check] [PATH]``.

The document is generated from the app itself (routes, models, problem responses); the
default output is ``docs/openapi.json``. ``--check`` exits 1 when the file is stale, and a
test does the same, so the published document cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import create_engine

from points.api.settings import ApiSettings, JwtSettings
from points.settings import Settings

__all__ = ["DEFAULT_PATH", "document", "render"]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = ROOT / "docs" / "openapi.json"


def document() -> dict[str, Any]:
    """The OpenAPI document of an app built with default settings (no database is opened)."""
    from points.api.app import create_app, load_partners

    api = ApiSettings(
        jwt=JwtSettings(algorithms=("HS256",), secret=SecretStr("o" * 64)),
        partners_config=ROOT / "config" / "partners.yaml",
    )
    settings = Settings(rules={"path": ROOT / "rules" / "default.yaml"})  # type: ignore[arg-type]
    engine = create_engine("sqlite://")
    # Placeholder partner keys: the exchange routes are documented whether or not the
    # environment has the real ones (nothing is signed while rendering).
    partners = load_partners(api.partners_config)
    keys = {p.signing_keys[0].env: "00" * 32 for p in partners.partners.values()}
    try:
        return create_app(settings, api, engine=engine, partners=partners,
                          environ=keys).openapi()
    finally:
        engine.dispose()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write or check docs/openapi.json")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is stale: run python -m points.api.openapi", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
