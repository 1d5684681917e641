"""Ledger tables (SQLAlchemy Core) on the shared metadata. The schema itself is migration 0002.

Shape (TigerBeetle-like): an entry header per request (committed or rejected), transfer legs
that each move a positive amount from one account to another (so every entry balances by
construction), cached balances (sharded for hot accounts) maintained by a database trigger on
leg inserts, lots for expiry, holds for two-phase transfers.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    text,
)

from points.db import metadata

__all__ = [
    "accounts",
    "balances",
    "entries",
    "hold_resolutions",
    "holds",
    "legs",
    "lot_moves",
    "lots",
]

# BigInteger ids autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ACCOUNT_KINDS_SQL = "'wallet', 'held', 'receivable', 'issuance', 'clearing', 'expiry'"
ENTRY_KINDS_SQL = (
    "'earn', 'spend', 'hold', 'post', 'void', 'swap', 'referral', "
    "'adjust', 'reverse', 'clawback', 'expire'"
)

accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("program", String(64), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    # balance * sign >= 0: 1 for wallets and holds, -1 for receivables, 0 for the bank's side.
    Column("sign", SmallInteger, nullable=False),
    Column("shard_count", SmallInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("program", "owner", "kind"),
    UniqueConstraint("id", "sign", name="uq_ledger_accounts_id_sign"),
    CheckConstraint(f"kind IN ({ACCOUNT_KINDS_SQL})", name="kind"),
    CheckConstraint(
        "(kind IN ('wallet', 'held') AND sign = 1)"
        " OR (kind = 'receivable' AND sign = -1)"
        " OR (kind IN ('issuance', 'clearing', 'expiry') AND sign = 0)",
        name="sign_matches_kind",
    ),
    CheckConstraint(
        "shard_count = 1 OR (shard_count BETWEEN 2 AND 64"
        " AND kind IN ('issuance', 'clearing', 'expiry'))",
        name="only_hot_accounts_shard",
    ),
)

balances = Table(
    "ledger_balances",
    metadata,
    Column("account_id", BigId, nullable=False),
    Column("shard", SmallInteger, nullable=False),
    Column("sign", SmallInteger, nullable=False),
    # credits minus debits, maintained only by the trigger on ledger_legs
    Column("balance", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "shard"),
    ForeignKeyConstraint(
        ["account_id", "sign"],
        ["ledger_accounts.id", "ledger_accounts.sign"],
        name="fk_ledger_balances_account_id_sign_ledger_accounts",
    ),
    CheckConstraint("balance * sign >= 0", name="within_sign"),
    # shard 0: the one row of an ordinary account; shards 1..shard_count: a hot account's rows
    CheckConstraint("shard >= 0 AND shard <= 64", name="shard_range"),
)

entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("status", String(10), nullable=False),
    Column("request_hash", BigInteger, nullable=False),
    Column("program", String(64), nullable=True),
    Column("customer_id", String(64), nullable=True),
    Column("amount", BigInteger, nullable=True),
    Column("reject_code", String(48), nullable=True),
    Column("reject_message", String(500), nullable=True),
    Column("reason", JSON, nullable=True),
    Column("reverses_entry_id", BigId, ForeignKey("ledger_entries.id"), nullable=True),
    Column("target_entry_id", BigId, ForeignKey("ledger_entries.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(f"kind IN ({ENTRY_KINDS_SQL})", name="kind"),
    CheckConstraint(
        "(status = 'committed' AND reject_code IS NULL)"
        " OR (status = 'rejected' AND reject_code IS NOT NULL)",
        name="status",
    ),
    CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
    CheckConstraint(
        "(kind = 'reverse' AND status = 'committed') = (reverses_entry_id IS NOT NULL)",
        name="reversal_points_at_original",
    ),
    # Partial: nearly every entry has neither, and a b-tree would index every NULL.
    Index("uq_ledger_entries_reverses_entry_id", "reverses_entry_id", unique=True,
          postgresql_where=text("reverses_entry_id IS NOT NULL"),
          sqlite_where=text("reverses_entry_id IS NOT NULL")),
    Index("ix_ledger_entries_target_entry_id", "target_entry_id",
          postgresql_where=text("target_entry_id IS NOT NULL"),
          sqlite_where=text("target_entry_id IS NOT NULL")),
)

# No foreign keys on the two high-volume tables (legs, lots): on PostgreSQL each one is a
# per-row lookup that takes a KEY SHARE lock on the parent row, and the parent of most legs is
# a hot account, so every writer would lock the same row 1,000 times per batch. Parents are
# append-only (a trigger refuses DELETE), so an FK could only catch a writer bug; verify()
# checks for orphans instead.
legs = Table(
    "ledger_legs",
    metadata,
    Column("entry_id", BigId, nullable=False),
    Column("leg_no", SmallInteger, nullable=False),
    Column("debit_account_id", BigId, nullable=False),
    Column("credit_account_id", BigId, nullable=False),
    Column("amount", BigInteger, nullable=False),
    PrimaryKeyConstraint("entry_id", "leg_no"),
    # An account's legs in entry order: a customer's activity page is a short range read
    # backwards from its cursor on each side (migration 0013).
    Index("ix_ledger_legs_debit_account_entry", "debit_account_id", "entry_id"),
    Index("ix_ledger_legs_credit_account_entry", "credit_account_id", "entry_id"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
)

lots = Table(
    "ledger_lots",
    metadata,
    # A lot is identified by the entry that created it (at most one lot per entry).
    Column("entry_id", BigId, primary_key=True, autoincrement=False),
    Column("account_id", BigId, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_range"),
    Index("ix_ledger_lots_open_by_account", "account_id", "expires_at",
          postgresql_where=text("remaining > 0"), sqlite_where=text("remaining > 0")),
    Index("ix_ledger_lots_open_by_expiry", "expires_at",
          postgresql_where=text("remaining > 0"), sqlite_where=text("remaining > 0")),
)

lot_moves = Table(
    "ledger_lot_moves",
    metadata,
    Column("entry_id", BigId, ForeignKey("ledger_entries.id"), nullable=False),
    Column("lot_id", BigId, ForeignKey("ledger_lots.entry_id"), nullable=False),
    # negative: points taken from the lot; positive: points returned to it
    Column("delta", BigInteger, nullable=False),
    PrimaryKeyConstraint("entry_id", "lot_id"),
    CheckConstraint("delta <> 0", name="delta_nonzero"),
)

holds = Table(
    "ledger_holds",
    metadata,
    Column("entry_id", BigId, ForeignKey("ledger_entries.id"), primary_key=True,
           autoincrement=False),
    Column("wallet_account_id", BigId, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("held_account_id", BigId, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("destination_account_id", BigId, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("timeout_at", DateTime(timezone=True), nullable=False, index=True),
    CheckConstraint("amount > 0", name="amount_positive"),
)

hold_resolutions = Table(
    "ledger_hold_resolutions",
    metadata,
    # The primary key is the hold: a hold is resolved at most once, by the database's word.
    Column("hold_entry_id", BigId, ForeignKey("ledger_holds.entry_id"), primary_key=True,
           autoincrement=False),
    Column("entry_id", BigId, ForeignKey("ledger_entries.id"), nullable=False, index=True),
    Column("outcome", String(8), nullable=False),
    Column("posted", BigInteger, nullable=False),
    CheckConstraint("outcome IN ('posted', 'voided', 'expired')", name="outcome"),
    CheckConstraint(
        "(outcome = 'posted' AND posted > 0) OR (outcome <> 'posted' AND posted = 0)",
        name="posted_amount",
    ),
)
