"""Settlement statements per partner and period, derived from the ledger (docs/settlement.md).

Everything in a statement is read from committed ledger legs on the partner's clearing
account (``(bank, <partner>, clearing)``), the fee legs of the partner's swaps, and the
``partner_fees`` rows of referrals, for entries created in ``[start, end)``. The partner's own
confirmations (``swap_replies``) are then reconciled against what the ledger posted.

The output is deterministic: lines ordered by entry id, integers only, times in UTC ISO 8601,
JSON with sorted keys and fixed separators, CSV with a fixed column order and ``\\n`` line
ends. The same ledger and period give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from points.exchange.store import aware
from points.exchange.tables import inbound_swaps, partner_fees, swap_replies, swaps
from points.ledger.tables import accounts, entries, legs
from points.partners import PartnerConfig, settlement_amount_minor

__all__ = ["Discrepancy", "Line", "Statement", "settle", "to_csv", "to_json"]

CSV_COLUMNS = ("entry_id", "created_at", "kind", "entry_key", "customer_id", "reference",
               "points", "amount_minor")
#: Replies that dispute a swap (the partner credited what we did not pay, or other amounts).
DISPUTED = ("late_confirmation", "amount_mismatch")


@dataclass(frozen=True, slots=True)
class Line:
    entry_id: int
    created_at: str
    kind: str  # swap_out, swap_in, swap_fee, clearing_other, referral_fee, referral_reward...
    entry_key: str
    customer_id: str
    reference: str
    points: int
    amount_minor: int = 0


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One disputed swap (one per swap, however often the partner re-sent its reply)."""

    kind: str  # late_confirmation, amount_mismatch, posted_without_confirmation, ...
    swap_id: str
    reference: str
    points: int
    at: str = ""  # when the first disputed reply was processed (UTC ISO 8601)
    customer_id: str = ""


@dataclass(frozen=True, slots=True)
class Statement:
    partner_id: str
    period_start: str
    period_end: str
    currency: str
    price_minor: int
    per_points: int
    points_out: int
    points_in: int
    clearing_other: int
    net_points: int
    fee_points: int
    points_amount_minor: int
    """``net_points`` at the contract price; positive: the bank pays the partner."""
    referral_fees_minor: int
    referral_rewards_minor: int
    net_amount_minor: int
    """Everything owed for the period; positive: the bank pays the partner."""
    swaps_completed: int
    inbound_swaps: int
    confirmations_matched: int
    reconciled: bool
    discrepancies: tuple[Discrepancy, ...] = field(default=())
    lines: tuple[Line, ...] = field(default=())


def _iso(value: datetime) -> str:
    return aware(value).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time(conn: Connection, value: datetime) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if conn.dialect.name == "sqlite" else value


def settle(
    conn: Connection, partner: PartnerConfig, start: datetime, end: datetime
) -> Statement:
    """The statement of ``partner`` for entries created in ``[start, end)``."""
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise ValueError("need aware times and start < end")
    pid = partner.id
    lo, hi = _time(conn, start), _time(conn, end)
    clearing = select(accounts.c.id).where(
        accounts.c.program == "bank", accounts.c.owner == pid, accounts.c.kind == "clearing"
    ).scalar_subquery()
    in_period = and_(entries.c.status == "committed", entries.c.created_at >= lo,
                     entries.c.created_at < hi)
    rows = conn.execute(
        select(entries.c.id, entries.c.created_at, entries.c.kind, entries.c.idempotency_key,
               entries.c.customer_id, legs.c.debit_account_id, legs.c.credit_account_id,
               legs.c.amount)
        .select_from(legs.join(entries, entries.c.id == legs.c.entry_id))
        .where(in_period, or_(legs.c.credit_account_id == clearing,
                              legs.c.debit_account_id == clearing))
        .order_by(entries.c.id, legs.c.leg_no)
    ).all()
    clearing_id = conn.execute(select(clearing)).scalar()
    lines: list[Line] = []
    out_points = in_points = other = 0
    posted: dict[str, int] = {}
    for entry_id, created, kind, key, customer, _debit, credit, amount in rows:
        signed = int(amount) if credit == clearing_id else -int(amount)
        if kind == "post" and key.startswith("swap:") and key.endswith(":hold:post"):
            line_kind, ref = "swap_out", key.split(":")[1]
            out_points += signed
            posted[ref] = posted.get(ref, 0) + signed
        elif kind == "swap" and key.startswith(f"inbound:{pid}:"):
            line_kind, ref = "swap_in", key[len(f"inbound:{pid}:"):]
            in_points += -signed
        else:
            line_kind, ref = "clearing_other", ""
            other += signed
        lines.append(Line(int(entry_id), _iso(created), line_kind, key, customer or "", ref,
                          signed))
    fee_rows = conn.execute(
        select(entries.c.id, entries.c.created_at, entries.c.idempotency_key,
               entries.c.customer_id, legs.c.amount, swaps.c.swap_id)
        .select_from(
            legs.join(entries, entries.c.id == legs.c.entry_id)
            .join(swaps, entries.c.idempotency_key == "swap:" + swaps.c.swap_id
                  + ":fee-hold:post")
        )
        .where(in_period, swaps.c.partner_id == pid)
        .order_by(entries.c.id, legs.c.leg_no)
    ).all()
    fee_points = 0
    for entry_id, created, key, customer, amount, swap_id in fee_rows:
        fee_points += int(amount)
        lines.append(Line(int(entry_id), _iso(created), "swap_fee", key, customer or "",
                          swap_id, int(amount)))
    fees_minor = rewards_minor = 0
    fee_entries = conn.execute(
        select(partner_fees)
        .where(partner_fees.c.partner_id == pid, partner_fees.c.at >= lo,
               partner_fees.c.at < hi)
        .order_by(partner_fees.c.at, partner_fees.c.fee_key)
    ).mappings().all()
    for row in fee_entries:
        amount = int(row["amount_minor"])
        if row["kind"].startswith("referral_reward"):
            rewards_minor += amount
        else:
            fees_minor += amount
        lines.append(Line(0, _iso(row["at"]), row["kind"], row["fee_key"], "",
                          row["referral_id"], int(row["partner_points"]), amount))
    inbound_count = int(conn.execute(
        select(func.count())
        .select_from(inbound_swaps)
        .where(inbound_swaps.c.partner_id == pid, inbound_swaps.c.at >= lo,
               inbound_swaps.c.at < hi)
    ).scalar_one())
    discrepancies, matched = _reconcile(conn, pid, lo, hi, posted)
    net = out_points - in_points + other
    points_minor = settlement_amount_minor(partner, net)
    s = partner.settlement
    return Statement(
        partner_id=pid,
        period_start=_iso(start),
        period_end=_iso(end),
        currency=s.currency,
        price_minor=s.price_minor,
        per_points=s.per_points,
        points_out=out_points,
        points_in=in_points,
        clearing_other=other,
        net_points=net,
        fee_points=fee_points,
        points_amount_minor=points_minor,
        referral_fees_minor=fees_minor,
        referral_rewards_minor=rewards_minor,
        net_amount_minor=points_minor + fees_minor + rewards_minor,
        swaps_completed=len(posted),
        inbound_swaps=inbound_count,
        confirmations_matched=matched,
        reconciled=not discrepancies,
        discrepancies=tuple(discrepancies),
        lines=tuple(sorted(lines, key=lambda ln: (ln.entry_id, ln.kind, ln.entry_key))),
    )


def _reconcile(
    conn: Connection, pid: str, lo: Any, hi: Any, posted: dict[str, int]
) -> tuple[list[Discrepancy], int]:
    """The partner's confirmations against the ledger's posts for the same period.

    A swap is disputed once: a confirmation re-sent under a new ``event_id`` (or a new
    ``partner_reference``) is the same dispute, counted in the period of its first reply, so
    it neither counts twice in one statement nor again in the next period."""
    rows = conn.execute(
        select(swap_replies.c.swap_id, swap_replies.c.outcome, swap_replies.c.reason,
               swap_replies.c.points, swap_replies.c.partner_reference, swap_replies.c.at,
               swaps.c.customer_id)
        .select_from(swap_replies.outerjoin(swaps, swaps.c.swap_id == swap_replies.c.swap_id))
        .where(swap_replies.c.partner_id == pid, swap_replies.c.event_type == "swap_confirmed",
               swap_replies.c.at < hi)
        .order_by(swap_replies.c.at, swap_replies.c.id)
    ).all()
    out: list[Discrepancy] = []
    confirmed: set[str] = set()
    disputed: set[str] = set()
    matched = 0
    for swap_id, outcome, reason, points, reference, at, customer in rows:
        in_period = _time(conn, aware(at)) >= lo
        if outcome == "applied" and reason == "partner_confirmed":
            confirmed.add(swap_id)
            if not in_period:
                continue
            if posted.get(swap_id) == int(points or 0):
                matched += 1
            else:
                out.append(Discrepancy("confirmed_not_posted", swap_id, reference or "",
                                       int(points or 0), _iso(at), customer or ""))
        elif reason in DISPUTED and swap_id not in disputed:
            disputed.add(swap_id)
            if in_period:
                out.append(Discrepancy(reason, swap_id, reference or "", int(points or 0),
                                       _iso(at), customer or ""))
    for swap_id, points in sorted(posted.items()):
        if swap_id not in confirmed:
            out.append(Discrepancy("posted_without_confirmation", swap_id, "", points))
    return out, matched


def to_json(statement: Statement) -> bytes:
    return (json.dumps(asdict(statement), sort_keys=True, separators=(",", ":"),
                       ensure_ascii=True) + "\n").encode()


def to_csv(statement: Statement) -> bytes:
    """One row per line, one ``discrepancy:<kind>`` row per disputed swap (the JSON's
    ``discrepancies``), then one ``total:<figure>`` row per figure (docs/settlement.md)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for ln in statement.lines:
        writer.writerow([ln.entry_id, ln.created_at, ln.kind, ln.entry_key, ln.customer_id,
                         ln.reference, ln.points, ln.amount_minor])
    # the same disputed items as the JSON's ``discrepancies``, one row per swap
    for d in statement.discrepancies:
        writer.writerow(["", d.at, f"discrepancy:{d.kind}", d.swap_id, d.customer_id,
                         d.reference, d.points, ""])
    writer.writerow(["", statement.period_end, "total:discrepancies", "", "",
                     statement.partner_id, len(statement.discrepancies), ""])
    for name in ("points_out", "points_in", "clearing_other", "net_points", "fee_points"):
        writer.writerow(["", statement.period_end, f"total:{name}", "", "", statement.partner_id,
                         getattr(statement, name), ""])
    for name in ("points_amount_minor", "referral_fees_minor", "referral_rewards_minor",
                 "net_amount_minor"):
        writer.writerow(["", statement.period_end, f"total:{name}", "", "", statement.partner_id,
                         "", getattr(statement, name)])
    return buffer.getvalue().encode()


def main(argv: list[str] | None = None) -> int:
    """``python -m points.exchange.settlement --partner P --start T --end T [--format json|csv]
    [--output FILE]``: kept because the docs name it; :func:`points.cli.legacy.settlement_main`
    wires the settings, the database and the partners (imported on call: the exchange knows
    nothing of the CLI or the adapters)."""
    from points.cli.legacy import settlement_main

    return settlement_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
