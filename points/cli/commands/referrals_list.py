"""``referrals list [--customer C] [--state S] [--reason CODE] [--limit N]``: referrals, newest
first, with their state and, when refused or clawed back, the reason code and why.

``--customer`` matches the customer as referrer or as referee. Onboardings whose code named
no one (``unknown_code``, ``invalid_code``) have no referral, only their recorded refusal:
they are listed too, with no referral id (docs/partners.md section 6).
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.cli.context import ops_of
from points.cli.errors import BadInput
from points.cli.options import Limit
from points.cli.output import fmt_time, table
from points.exchange.referral_views import ReferralRecord, list_referrals
from points.referrals import ReferralStatus

REASON_SHOWN_MAX = 80
STATES = tuple(str(s) for s in ReferralStatus)


def referrals_table(title: str, records: list[ReferralRecord]) -> object:
    return table(
        title,
        ["referral", "state", "reason code", "referrer", "referee", "origin", "updated",
         "why"],
        [(r.referral_id or f"(no referral: event {r.event_id})", r.state, r.reason_code or "",
          f"{r.referrer_kind}/{r.referrer_id}" if r.referrer_id else "", r.referee_id or "",
          r.origin or "", fmt_time(r.at),
          r.detail if len(r.detail) <= REASON_SHOWN_MAX
          else r.detail[: REASON_SHOWN_MAX - 1] + "…")
         for r in records],
    )


def command(
    ctx: typer.Context,
    customer: Annotated[str | None, typer.Option(
        "--customer", help="Only referrals with this customer as referrer or referee.",
        show_default=False)] = None,
    state: Annotated[str | None, typer.Option(
        "--state", help=f"Only this state: {', '.join(STATES)}.", show_default=False)] = None,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Only this reason code (e.g. referral_ring, already_a_customer, "
        "unknown_code).", show_default=False)] = None,
    limit: Limit = 100,
) -> None:
    """List referrals, newest first."""
    if state is not None and state not in STATES:
        raise BadInput(f"--state must be one of {', '.join(STATES)}, not {state!r}")
    ops = ops_of(ctx)
    with ops.read() as conn:
        records = list_referrals(conn, customer=customer, state=state, reason=reason,
                                 limit=limit)
    ops.output.emit(
        {"referrals": [r.to_json() for r in records]},
        referrals_table("Referrals" + (f" of {customer}" if customer else ""), records),
    )
