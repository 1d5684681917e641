"""What ``verify`` proves about gifts and red packets: each query returns only offenders."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, text

__all__ = ["GIFT_CHECKS"]

GIFT_CHECKS: Final[dict[str, str]] = {
    # What an open packet still holds is exactly what is not claimed yet.
    "packet_held_is_unclaimed": """
        SELECT 'packet ' || p.packet_id,
               'held ' || coalesce(h.amount, 0) || ' unclaimed ' || (p.total - p.claimed_points)
          FROM red_packets p
          JOIN ledger_entries e ON e.idempotency_key = p.hold_key
          LEFT JOIN ledger_holds h ON h.entry_id = e.id
          LEFT JOIN ledger_hold_resolutions r ON r.hold_entry_id = h.entry_id
         WHERE p.status = 'open'
           AND (h.amount IS NULL OR r.hold_entry_id IS NOT NULL
                OR h.amount <> p.total - p.claimed_points)
    """,
    # The claims add up: count, points, and a claimed-out packet gave out its whole total.
    "packet_claims_sum": """
        SELECT 'packet ' || p.packet_id,
               'claims ' || coalesce(c.n, 0) || '/' || p.claimed_count || ' points '
               || coalesce(c.points, 0) || '/' || p.claimed_points || ' of ' || p.total
          FROM red_packets p
          LEFT JOIN (SELECT packet_id, count(*) AS n, sum(points) AS points, min(points) AS least
                       FROM packet_claims GROUP BY packet_id) c ON c.packet_id = p.packet_id
         WHERE coalesce(c.n, 0) <> p.claimed_count
            OR coalesce(c.points, 0) <> p.claimed_points
            OR (p.status = 'claimed' AND (p.claimed_points <> p.total
                                          OR p.claimed_count <> p.shares))
            OR coalesce(c.least, 1) < 1
    """,
    # Closed packets gave back exactly what was not claimed: their last hold was voided whole.
    "packet_closed_returned": """
        SELECT 'packet ' || p.packet_id, 'status ' || p.status || ' hold ' || coalesce(r.outcome,
               'pending')
          FROM red_packets p
          JOIN ledger_entries e ON e.idempotency_key = p.hold_key
          JOIN ledger_holds h ON h.entry_id = e.id
          LEFT JOIN ledger_hold_resolutions r ON r.hold_entry_id = h.entry_id
         WHERE p.status IN ('expired', 'voided')
           AND (r.outcome IS NULL OR r.outcome = 'posted'
                OR h.amount <> p.total - p.claimed_points)
    """,
    # Gifts pass through their clearing account: no bank expense, so it is always zero.
    "gift_clearing_zero": """
        SELECT a.owner || '/clearing', 'balance ' || sum(b.balance)
          FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
         WHERE a.kind = 'clearing' AND a.owner = 'p2p-gifts'
         GROUP BY a.owner HAVING sum(b.balance) <> 0
    """,
}


def gift_violations(conn: Connection, limit: int) -> list[tuple[str, str, str]]:
    """``(check, subject, detail)`` for every offender, at most ``limit`` per check."""
    out: list[tuple[str, str, str]] = []
    for name, sql in GIFT_CHECKS.items():
        for subject, detail in conn.execute(text(f"{sql} LIMIT {limit}")).all():
            out.append((name, str(subject), str(detail)))
    return out
