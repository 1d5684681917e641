"""``verify``: prove every ledger invariant; exit 1 and a table of violations if any breaks.

On PostgreSQL the checks run in one REPEATABLE READ transaction, so they see one snapshot
while the workers go on writing.
"""

from __future__ import annotations

import typer

from points.cli.context import ops_of
from points.cli.errors import ViolationsFound
from points.cli.output import table
from points.ledger import verify


def command(ctx: typer.Context) -> None:
    """Check the whole ledger's invariants."""
    ops = ops_of(ctx)
    engine = ops.engine()
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with ops.output.progress("verifying the ledger", None), engine.connect() as conn, \
            conn.begin():
        report = verify(conn)
    counts = {"entries": report.entries, "legs": report.legs, "accounts": report.accounts,
              "lots": report.lots, "holds": report.holds}
    violations = [{"check": v.check, "subject": v.subject, "detail": v.detail}
                  for v in report.violations]
    counted = ", ".join(f"{n} {name}" for name, n in counts.items())
    if report.ok:
        ops.output.emit({"ok": True, "counts": counts, "violations": []},
                        f"ledger ok: {counted}")
        return
    ops.output.emit(
        {"ok": False, "counts": counts, "violations": violations},
        table(f"{len(violations)} violations", ["check", "subject", "detail"],
              [(v.check, v.subject, v.detail) for v in report.violations]),
        f"checked {counted}",
    )
    raise ViolationsFound(f"{len(violations)} ledger invariant violations "
                          f"({', '.join(sorted({v.check for v in report.violations}))})")
