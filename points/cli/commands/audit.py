"""``audit``: prove that no consumed input ended silently (see :mod:`points.audit`).

Exit 0 when every inbox event has its outcome, every refund's clawback is posted or refused,
every dead letter reached points.dlq and every referral code onboarding has a referral or a
refusal; exit 1 (``violations_found``) listing the offenders otherwise.
"""

from __future__ import annotations

import typer

from points.audit import audit
from points.cli.context import ops_of
from points.cli.errors import ViolationsFound
from points.cli.output import table


def command(ctx: typer.Context) -> None:
    """Check that every consumed event has exactly one recorded outcome."""
    ops = ops_of(ctx)
    engine = ops.engine()
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with ops.output.progress("auditing outcomes", None), engine.connect() as conn, conn.begin():
        report = audit(conn)
    skipped = ", ".join(f"{n} {t}" for t, n in report.not_audited.items()) or "none"
    summary = f"{report.events} events audited; not audited by type: {skipped}"
    if report.ok:
        ops.output.emit(report.to_json(), f"audit ok: {summary}")
        return
    ops.output.emit(
        report.to_json(),
        table(f"{len(report.offenders)} events without a clear outcome",
              ["check", "subject", "customer", "detail"],
              [(o.check, o.subject, o.customer_id or "", o.detail) for o in report.offenders]),
        summary,
    )
    raise ViolationsFound(f"{len(report.offenders)} silent outcomes "
                          f"({', '.join(sorted(report.counts))})")
