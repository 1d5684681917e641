"""``refusals list``: recorded refusals (points/refusals.py), newest first, with filters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from sqlalchemy import select

from points.cli.context import ops_of
from points.cli.errors import BadInput
from points.cli.options import Limit
from points.cli.output import fmt_time, table
from points.refusals import refusals

COLUMNS = ("id", "dedupe_key", "source", "subject", "subject_id", "event_id", "customer_id",
           "reason_code", "reason", "at")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise BadInput(f"--since {value!r} is not an ISO date or time") from error
    if parsed.tzinfo is None:
        raise BadInput(f"--since {value!r} needs a zone (e.g. 2026-12-01T00:00:00+00:00)")
    return parsed


def _opt(help_text: str) -> Any:
    return typer.Option(help=help_text, show_default=False)


def command(
    ctx: typer.Context,
    customer: Annotated[str | None, _opt("Only this customer's refusals.")] = None,
    source: Annotated[str | None, _opt("Only from this source (earning, referrals, ...).")] = None,
    subject: Annotated[str | None, _opt("Only this subject (clawback, referral, ...).")] = None,
    reason: Annotated[str | None, _opt("Only this reason code.")] = None,
    since: Annotated[str | None, _opt("Only at or after this ISO time (with zone).")] = None,
    limit: Limit = 100,
) -> None:
    """List recorded refusals, newest first."""
    ops = ops_of(ctx)
    t = refusals
    query = select(*(t.c[name] for name in COLUMNS)).order_by(t.c.at.desc(), t.c.id.desc())
    for column, value in (("customer_id", customer), ("source", source),
                          ("subject", subject), ("reason_code", reason)):
        if value is not None:
            query = query.where(t.c[column] == value)
    since_at = _since(since)
    if since_at is not None:
        query = query.where(t.c.at >= since_at)
    with ops.read() as conn:
        rows = [dict(r) for r in conn.execute(query.limit(limit)).mappings()]
    as_json = [{**r, "at": r["at"].isoformat()} for r in rows]
    ops.output.emit(
        {"refusals": as_json},
        table("Refusals", ["id", "at", "customer", "subject", "reason code", "reason"],
              [(r["id"], fmt_time(r["at"]), r["customer_id"] or "", r["subject"],
                r["reason_code"], r["reason"]) for r in rows], numeric=("id",)),
    )
