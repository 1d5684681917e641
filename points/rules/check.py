"""Validate rule files: ``python -m points.rules.check FILE [FILE...]``.

Prints one line per file (``ok`` with the version and rule count, or every problem, each
naming the file, rule id and field). Exit codes: 0 all valid, 1 at least one invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from points.rules.errors import RuleFileError
from points.rules.ruleset import load_ruleset

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m points.rules.check", description="Validate earning rule files."
    )
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    status = EXIT_OK
    for path in args.files:
        try:
            ruleset = load_ruleset(path)
        except RuleFileError as exc:
            print(str(exc), file=sys.stderr)
            status = EXIT_INVALID
            continue
        kinds = Counter(rule.kind for rule in ruleset.rules)
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        print(f"{path}: ok, version {ruleset.version}, {len(ruleset.rules)} rules ({summary})")
    return status


if __name__ == "__main__":
    sys.exit(main())
