"""What ``verify`` proves about gifts and red packets: each query returns only offenders.

Each offender is ``(subject, detail)``; the detail says what was found against what the books
require, in words an operator can act on (docs/gifts.md, "What `points-ledger verify` proves").
Bounds a single row can break (claims within the shares, points within the total, total ≥
shares) are the database's check constraints; these queries prove what spans rows and tables.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, text

__all__ = ["GIFT_CHECKS"]

GIFT_CHECKS: Final[dict[str, str]] = {
    # What an open packet still holds is exactly what is not claimed yet.
    "packet_held_is_unclaimed": """
        SELECT 'packet ' || p.packet_id,
               'open packet holds ' || coalesce(h.amount, 0)
               || CASE WHEN r.hold_entry_id IS NOT NULL THEN ' (hold already ' || r.outcome || ')'
                       ELSE '' END
               || ' but ' || (p.total - p.claimed_points) || ' are unclaimed (total '
               || p.total || ' - claimed ' || p.claimed_points || ')'
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
               coalesce(c.n, 0) || ' claims of ' || coalesce(c.points, 0)
               || ' points recorded, the packet says ' || p.claimed_count || ' of '
               || p.claimed_points || ' (' || p.shares || ' shares, total ' || p.total
               || ', status ' || p.status || ')'
          FROM red_packets p
          LEFT JOIN (SELECT packet_id, count(*) AS n, sum(points) AS points, min(points) AS least,
                            max(share_no) AS last
                       FROM packet_claims GROUP BY packet_id) c ON c.packet_id = p.packet_id
         WHERE coalesce(c.n, 0) <> p.claimed_count
            OR coalesce(c.last, 0) <> coalesce(c.n, 0)
            OR coalesce(c.points, 0) <> p.claimed_points
            OR (p.status = 'claimed' AND (p.claimed_points <> p.total
                                          OR p.claimed_count <> p.shares))
            OR coalesce(c.least, 1) < 1
    """,
    # Share by share, in claim order: each share knew what was left before it, and left at
    # least a point for every share after it (so the shares can still sum exactly to the total).
    "packet_claims_chain": """
        SELECT 'packet ' || p.packet_id || ' share ' || c.share_no,
               'share ' || c.share_no || ' of ' || p.shares || ' took ' || c.points
               || ' with ' || c.remaining_before || ' recorded as left before it; the earlier '
               || 'shares leave ' || (p.total - c.earlier) || ' of ' || p.total
          FROM (SELECT packet_id, share_no, points, remaining_before,
                       coalesce(sum(points) OVER (
                           PARTITION BY packet_id ORDER BY share_no
                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS earlier
                  FROM packet_claims) c
          JOIN red_packets p ON p.packet_id = c.packet_id
         WHERE c.share_no < 1 OR c.share_no > p.shares
            OR c.remaining_before <> p.total - c.earlier
            OR c.remaining_before - c.points < p.shares - c.share_no
    """,
    # Closed packets gave back exactly what was not claimed: their last hold was voided whole.
    "packet_closed_returned": """
        SELECT 'packet ' || p.packet_id,
               p.status || ' packet: its last hold of ' || h.amount || ' is '
               || coalesce(r.outcome, 'still pending') || ', but '
               || (p.total - p.claimed_points) || ' unclaimed points must be voided back'
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
        SELECT a.owner || '/clearing',
               'balance ' || sum(b.balance) || ', must be 0 (gifts are no bank expense)'
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
