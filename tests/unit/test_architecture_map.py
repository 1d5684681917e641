"""docs/architecture.md's module map names every module under points/, streams/ and adapters/,
and names no module that is not there (a moved or renamed module leaves a stale line)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAPPED_PACKAGES = ("points", "streams", "adapters")


def map_entries() -> set[str]:
    """The paths in the first cell of every module-map row (`| `points/x.py` | ... |`); an entry
    ending in / stands for every module under that folder (e.g. one module per CLI command)."""
    entries: set[str] = set()
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            entries |= {p for p in re.findall(r"`([\w/.]+)`", first_cell) if "/" in p}
    return entries


def is_mapped(module: str, entries: set[str]) -> bool:
    return module in entries or any(e.endswith("/") and module.startswith(e) for e in entries)


def test_every_module_has_a_line_in_the_module_map() -> None:
    """Each .py file (package __init__ files aside) under points/, streams/ and adapters/ is
    named in a module-map row of docs/architecture.md, itself or by its folder's row."""
    entries = map_entries()
    modules = [
        path.relative_to(ROOT).as_posix()
        for package in MAPPED_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "__init__.py"
    ]
    assert len(modules) > 100  # the walk found the code
    missing = [m for m in modules if not is_mapped(m, entries)]
    assert missing == [], f"add a line for each to docs/architecture.md's module map: {missing}"


def test_every_module_map_line_names_a_module_that_exists() -> None:
    """A row naming a file or folder that is not in the tree is stale (moved or renamed)."""
    stale = sorted(e for e in map_entries() if not (ROOT / e).exists())
    assert stale == [], f"docs/architecture.md names modules that do not exist: {stale}"
