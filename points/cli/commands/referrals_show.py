"""``referrals show REFERRAL_ID``: one referral, its parties, dates, rewards and, when
refused, the recorded refusal (``refusals`` row ``referral:<referral_id>``)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from points.cli.context import ops_of
from points.cli.errors import NotFound
from points.cli.output import fmt_time, key_values, table
from points.exchange.referral_views import find_referral
from points.refusals import refusals


def command(
    ctx: typer.Context,
    referral_id: Annotated[str, typer.Argument(help="The referral's id (see referrals list).",
                                               show_default=False)],
) -> None:
    """Show one referral: state, reason, parties, window, rewards, recorded refusal."""
    ops = ops_of(ctx)
    with ops.read() as conn:
        record = find_referral(conn, referral_id)
        refusal = conn.execute(
            select(refusals.c.reason_code, refusals.c.reason, refusals.c.at,
                   refusals.c.event_id)
            .where(refusals.c.dedupe_key == f"referral:{referral_id}")
        ).mappings().first()
    if record is None:
        raise NotFound(f"no referral with id {referral_id!r}")
    data = record.to_json()
    data["refusal"] = None if refusal is None else dict(refusal)
    pairs: list[tuple[str, object]] = [
        ("referral", record.referral_id), ("origin", record.origin),
        ("state", record.state + (f" ({record.reason_code})" if record.reason_code else "")),
        ("why", record.detail), ("referrer", f"{record.referrer_kind}/{record.referrer_id}"),
        ("referee", record.referee_id), ("code", record.code), ("partner", record.partner_id),
        ("signed up", fmt_time(record.signed_up_at)), ("qualify by", fmt_time(record.qualify_by)),
        ("qualified", fmt_time(record.qualified_at)),
        ("qualifying event", record.qualifying_event_id), ("updated", fmt_time(record.at)),
    ]
    if refusal is not None:
        pairs.append(("refusal recorded", f"{fmt_time(refusal['at'])} "
                                          f"(event {refusal['event_id'] or '-'})"))
    ops.output.emit(
        data,
        key_values(f"Referral {record.referral_id}", pairs),
        table("Rewards", ["key", "role", "beneficiary", "points", "amount (minor)"],
              [(w.idempotency_key, w.role, f"{w.beneficiary.kind}/{w.beneficiary.id}",
                w.points, w.amount_minor) for w in record.rewards],
              numeric=("points", "amount (minor)")),
    )
