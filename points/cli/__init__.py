"""The operations CLI, ``points-ledger`` (see docs/operations.md).

A thin entry point: each command reads or writes through :mod:`points.ledger`'s public API
(and :mod:`points.cli.store` for the operations tables), inside a transaction it owns.
"""

from __future__ import annotations

__all__ = ["app", "main"]

from points.cli.app import app, main
