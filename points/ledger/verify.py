"""``verify``: prove every ledger invariant over the whole ledger, set-based.

Each check is one aggregate query that returns only the rows that break it, so a clean ledger
costs a handful of scans. On PostgreSQL run it in a REPEATABLE READ transaction to check one
consistent snapshot while writers go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Connection, text

__all__ = ["CHECKS", "VerifyReport", "Violation", "verify"]

VIOLATIONS_PER_CHECK_MAX: Final = 100


@dataclass(frozen=True, slots=True)
class Violation:
    check: str
    subject: str
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entries: int
    legs: int
    accounts: int
    lots: int
    holds: int
    violations: tuple[Violation, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.violations


# One pass over accounts, balances and legs; the rows that break any account rule.
ACCOUNTS_SQL: Final = """
    SELECT owner || '/' || kind || '@' || program, sign, shard_count, cached, shards, summed,
           min_shard
      FROM (SELECT a.program, a.owner, a.kind, a.sign, a.shard_count,
                   coalesce(b.cached, 0) AS cached, coalesce(b.shards, 0) AS shards,
                   coalesce(b.min_shard, -1) AS min_shard,
                   coalesce(c.credits, 0) - coalesce(d.debits, 0) AS summed
              FROM ledger_accounts a
              LEFT JOIN (SELECT account_id, sum(balance) AS cached, count(*) AS shards,
                                min(shard) AS min_shard
                           FROM ledger_balances GROUP BY account_id) b ON b.account_id = a.id
              LEFT JOIN (SELECT credit_account_id AS id, sum(amount) AS credits
                           FROM ledger_legs GROUP BY credit_account_id) c ON c.id = a.id
              LEFT JOIN (SELECT debit_account_id AS id, sum(amount) AS debits
                           FROM ledger_legs GROUP BY debit_account_id) d ON d.id = a.id) s
     WHERE cached <> summed OR cached * sign < 0 OR shards <> shard_count
        OR (shard_count = 1 AND min_shard <> 0) OR (shard_count > 1 AND min_shard <> 1)
"""

CHECKS: Final[dict[str, str]] = {
    "balance_rows_within_sign": """
        SELECT 'account ' || account_id || ' shard ' || shard, 'balance ' || balance
          FROM ledger_balances WHERE balance * sign < 0
    """,
    # every leg: positive amount, two accounts of one program, a committed entry
    # Legs and lots carry no foreign keys (see tables.py), so orphans are checked here too.
    "legs_well_formed": """
        SELECT 'entry ' || g.entry_id || ' leg ' || g.leg_no,
               'amount ' || g.amount || ' ' || coalesce(da.program, '(no debit account)')
               || '->' || coalesce(ca.program, '(no credit account)')
               || ' status ' || coalesce(e.status, '(no entry)')
          FROM ledger_legs g
          LEFT JOIN ledger_entries e ON e.id = g.entry_id
          LEFT JOIN ledger_accounts da ON da.id = g.debit_account_id
          LEFT JOIN ledger_accounts ca ON ca.id = g.credit_account_id
         WHERE e.id IS NULL OR da.id IS NULL OR ca.id IS NULL
            OR g.amount <= 0 OR g.debit_account_id = g.credit_account_id
            OR da.program <> ca.program OR e.status <> 'committed'
    """,
    "lots_reference_rows": """
        SELECT 'lot ' || l.entry_id, 'missing entry, or account is not a wallet'
          FROM ledger_lots l
         WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e
                            WHERE e.id = l.entry_id AND e.status = 'committed')
            OR NOT EXISTS (SELECT 1 FROM ledger_accounts a
                            WHERE a.id = l.account_id AND a.kind = 'wallet')
    """,
    "rejected_entries_move_nothing": """
        SELECT 'entry ' || e.id, 'rejected entry has lots, lot moves or holds'
          FROM ledger_entries e
         WHERE e.status = 'rejected' AND (
               EXISTS (SELECT 1 FROM ledger_lots l WHERE l.entry_id = e.id)
            OR EXISTS (SELECT 1 FROM ledger_lot_moves m WHERE m.entry_id = e.id)
            OR EXISTS (SELECT 1 FROM ledger_holds h WHERE h.entry_id = e.id))
    """,
    "reversals_mirror_originals": """
        SELECT 'entry ' || r.id, 'reversal legs differ from the original''s'
          FROM ledger_entries r JOIN ledger_entries o ON o.id = r.reverses_entry_id
         WHERE r.status = 'committed' AND (
               (SELECT coalesce(sum(amount), 0) FROM ledger_legs WHERE entry_id = r.id)
            <> (SELECT coalesce(sum(amount), 0) FROM ledger_legs WHERE entry_id = o.id))
    """,
    # lot.remaining == lot.amount + its moves, within [0, amount]
    "lots_match_moves": """
        SELECT 'lot ' || l.entry_id,
               'remaining ' || l.remaining || ' amount ' || l.amount
               || ' moves ' || coalesce(m.moved, 0)
          FROM ledger_lots l
          LEFT JOIN (SELECT lot_id, sum(delta) AS moved FROM ledger_lot_moves
                      GROUP BY lot_id) m ON m.lot_id = l.entry_id
         WHERE l.remaining <> l.amount + coalesce(m.moved, 0)
            OR l.remaining < 0 OR l.remaining > l.amount
    """,
    # sum of a wallet's lots == the wallet's balance
    "lots_match_wallets": """
        SELECT a.owner || '/wallet@' || a.program,
               'lots ' || coalesce(l.total, 0) || ' balance ' || b.balance
          FROM ledger_accounts a
          JOIN (SELECT account_id, sum(balance) AS balance FROM ledger_balances
                 GROUP BY account_id) b ON b.account_id = a.id
          LEFT JOIN (SELECT account_id, sum(remaining) AS total FROM ledger_lots
                      GROUP BY account_id) l ON l.account_id = a.id
         WHERE a.kind = 'wallet' AND coalesce(l.total, 0) <> b.balance
    """,
    # held balance == sum of pending holds; each hold took exactly its amount from lots
    "holds_match_held": """
        SELECT a.owner || '/held@' || a.program,
               'pending ' || coalesce(p.total, 0) || ' balance ' || b.balance
          FROM ledger_accounts a
          JOIN (SELECT account_id, sum(balance) AS balance FROM ledger_balances
                 GROUP BY account_id) b ON b.account_id = a.id
          LEFT JOIN (SELECT h.held_account_id, sum(h.amount) AS total FROM ledger_holds h
                      WHERE NOT EXISTS (SELECT 1 FROM ledger_hold_resolutions r
                                         WHERE r.hold_entry_id = h.entry_id)
                      GROUP BY h.held_account_id) p ON p.held_account_id = a.id
         WHERE a.kind = 'held' AND coalesce(p.total, 0) <> b.balance
    """,
    "holds_took_their_amount": """
        SELECT 'hold ' || h.entry_id, 'amount ' || h.amount || ' taken ' || coalesce(m.taken, 0)
          FROM ledger_holds h
          LEFT JOIN (SELECT entry_id, -sum(delta) AS taken FROM ledger_lot_moves
                      GROUP BY entry_id) m ON m.entry_id = h.entry_id
         WHERE coalesce(m.taken, 0) <> h.amount
    """,
    "resolutions_within_hold": """
        SELECT 'hold ' || h.entry_id, 'posted ' || r.posted || ' of ' || h.amount
          FROM ledger_hold_resolutions r JOIN ledger_holds h ON h.entry_id = r.hold_entry_id
         WHERE r.posted > h.amount
    """,
}


def _has_table(conn: Connection, table: str) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(conn).has_table(table))


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def verify(conn: Connection) -> VerifyReport:
    """Check every invariant over the whole ledger; return what breaks (empty when sound)."""
    violations: list[Violation] = []
    restore = None
    if conn.dialect.name == "postgresql":
        # Every check is a full-scan aggregate, best done with hash joins. Right after a bulk
        # load the statistics can still say "1 row", and a nested loop over aggregates then
        # turns seconds into minutes; this keeps the plan right whatever the statistics say.
        restore = conn.execute(text("SELECT current_setting('enable_nestloop')")).scalar_one()
        conn.execute(text("SET LOCAL enable_nestloop = off"))
    for subject, sign, shard_count, cached, shards, summed, min_shard in conn.execute(
        text(f"{ACCOUNTS_SQL} LIMIT {VIOLATIONS_PER_CHECK_MAX}")
    ):
        if cached != summed:
            violations.append(Violation("cached_equals_summed", subject,
                                        f"cached {cached} summed {summed}"))
        if cached * sign < 0:
            violations.append(Violation("sign_rule", subject, f"balance {cached}"))
        if shards != shard_count or min_shard != (0 if shard_count == 1 else 1):
            violations.append(Violation(
                "shards_complete", subject,
                f"{shards} balance rows of {shard_count}, first shard {min_shard}"))
    for name, sql in CHECKS.items():
        rows = conn.execute(text(f"{sql} LIMIT {VIOLATIONS_PER_CHECK_MAX}")).all()
        violations.extend(Violation(name, str(subject), str(detail)) for subject, detail in rows)
    if _has_table(conn, "red_packets"):
        from points.gifts.checks import gift_violations  # gifts build on the ledger

        violations.extend(Violation(*v) for v in gift_violations(conn, VIOLATIONS_PER_CHECK_MAX))
    if restore is not None:
        conn.execute(text(f"SET LOCAL enable_nestloop = {'on' if restore == 'on' else 'off'}"))
    return VerifyReport(
        entries=_count(conn, "ledger_entries"),
        legs=_count(conn, "ledger_legs"),
        accounts=_count(conn, "ledger_accounts"),
        lots=_count(conn, "ledger_lots"),
        holds=_count(conn, "ledger_holds"),
        violations=tuple(violations),
    )
