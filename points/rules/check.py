"""Validate rule files: ``python -m points.rules.check FILE [FILE...]``.

Prints one line per file (``ok`` with the version and rule count, or every problem, each
naming the file, rule id and field). Exit codes: 0 all valid, 1 at least one invalid.

Kept because the docs name it; the work is ``points-ledger rules validate``'s, run by
:func:`points.cli.legacy.check_main` (imported on call: the rules know nothing of the CLI).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from points.cli.legacy import check_main

    return check_main(argv)


if __name__ == "__main__":
    sys.exit(main())
