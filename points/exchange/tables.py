"""Tables of the partner exchange (migration 0005): links, quotes, swaps and their replies,
inbound credits, referral codes, referrals and partner fees.

Points themselves live only in the ledger; these tables hold the state machines that explain
them, written in the same transaction as the ledger entries they cause.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from points.db import metadata

__all__ = [
    "inbound_swaps",
    "known_customers",
    "partner_fees",
    "partner_links",
    "referral_codes",
    "referrals",
    "swap_quotes",
    "swap_replies",
    "swaps",
]

BigId = BigInteger().with_variant(Integer(), "sqlite")

# A customer's membership at a partner, validated by the partner (member_linked) before swaps.
partner_links = Table(
    "partner_links",
    metadata,
    Column("customer_id", String(64), nullable=False),
    Column("partner_id", String(32), nullable=False),
    Column("partner_member_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # requested, linked, rejected
    Column("request_id", String(64), nullable=False),
    Column("referral_id", String(64), nullable=True),
    Column("reason", String(500), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("customer_id", "partner_id"),
    UniqueConstraint("request_id"),
    # One bank customer per partner membership (migration 0011): member ids are guessable, so
    # the database, not a pre-check, refuses a second customer. A rejected link holds nothing.
    Index(
        "uq_partner_links_membership", "partner_id", "partner_member_id", unique=True,
        postgresql_where=text("status IN ('requested', 'linked')"),
        sqlite_where=text("status IN ('requested', 'linked')"),
    ),
)

# A priced offer the customer may accept until it expires.
swap_quotes = Table(
    "swap_quotes",
    metadata,
    Column("quote_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("partner_id", String(32), nullable=False),
    Column("rate_version", String(64), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("fee_points", BigInteger, nullable=False),
    Column("partner_units", BigInteger, nullable=False),
    Column("rate_num", BigInteger, nullable=False),
    Column("rate_den", BigInteger, nullable=False),
    Column("quoted_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# One outbound swap and its saga state (points.swap_saga.Swap).
swaps = Table(
    "swaps",
    metadata,
    Column("swap_id", String(64), primary_key=True),
    Column("quote_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("partner_id", String(32), nullable=False),
    Column("partner_member_id", String(128), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("fee_points", BigInteger, nullable=False),
    Column("partner_units", BigInteger, nullable=False),
    Column("rate_version", String(64), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("deadline_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("partner_reference", String(128), nullable=True),
    Column("resolved_by", String(64), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("quote_id"),
    Index("ix_swaps_customer_partner", "customer_id", "partner_id", "requested_at"),
    # The deadline timer's scan: only unresolved swaps are indexed.
    Index(
        "ix_swaps_open_deadline",
        "deadline_at",
        postgresql_where=text("status IN ('requested', 'pending')"),
        sqlite_where=text("status IN ('requested', 'pending')"),
    ),
)

# Every input a swap saw (partner replies, the deadline timer), applied or ignored, and why.
swap_replies = Table(
    "swap_replies",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("swap_id", String(64), nullable=False, index=True),
    Column("partner_id", String(32), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("outcome", String(8), nullable=False),  # applied, ignored
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("points", BigInteger, nullable=True),
    Column("partner_units", BigInteger, nullable=True),
    Column("partner_reference", String(128), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

# Inbound swaps (partner units -> bank points): one per partner reference, like the ledger key.
inbound_swaps = Table(
    "inbound_swaps",
    metadata,
    Column("partner_id", String(32), nullable=False),
    Column("partner_reference", String(128), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("partner_units", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("ledger_key", String(128), nullable=False, unique=True),
    Column("at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("partner_id", "partner_reference"),
)

# Referral codes: one per customer, and one per partner campaign (owner_kind 'partner').
referral_codes = Table(
    "referral_codes",
    metadata,
    Column("code", String(16), primary_key=True),
    Column("owner_kind", String(16), nullable=False),
    Column("owner_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("owner_kind", "owner_id"),
)

# One referral and its lifecycle (points.referrals.Referral).
referrals = Table(
    "referrals",
    metadata,
    Column("referral_id", String(64), primary_key=True),
    Column("origin", String(16), nullable=False),
    Column("referrer_kind", String(16), nullable=False),
    Column("referrer_id", String(64), nullable=False),
    Column("referee_id", String(64), nullable=True),
    Column("code", String(16), nullable=True),
    Column("partner_id", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("invited_at", DateTime(timezone=True), nullable=False),
    Column("signed_up_at", DateTime(timezone=True), nullable=True),
    Column("qualify_by", DateTime(timezone=True), nullable=True),
    Column("qualifying_event_id", String(64), nullable=True),
    Column("qualified_at", DateTime(timezone=True), nullable=True),
    Column("rewards", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_referrals_referrer", "referrer_kind", "referrer_id", "signed_up_at"),
    Index("ix_referrals_referee", "referee_id"),
    # One referrer per referee, enforced by the database too (refused attempts do not count).
    Index(
        "uq_referrals_active_referee",
        "referee_id",
        unique=True,
        postgresql_where=text("referee_id IS NOT NULL AND status <> 'refused'"),
        sqlite_where=text("referee_id IS NOT NULL AND status <> 'refused'"),
    ),
)

# Customer ids the referral reader saw on the bank's own topics (bank.customers,
# bank.transactions): since when each is known and by which event, and the identity hash core
# banking sent for it. The guards `already_a_customer` and `self_referral_identity` read it.
known_customers = Table(
    "known_customers",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    # Earliest joined_at of a profile / onboarding, or occurred_at of a transaction.
    Column("known_since", DateTime(timezone=True), nullable=False),
    Column("evidence", String(128), nullable=False),  # "<event_type> <event_id>"
    Column("identity_hash", String(64), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_known_customers_identity_hash", "identity_hash"),
)

# Money between the bank and a partner outside the points ledger: referral fees and
# partner-side referral rewards. Positive: the bank owes the partner. Append-only.
partner_fees = Table(
    "partner_fees",
    metadata,
    Column("fee_key", String(128), primary_key=True),
    Column("partner_id", String(32), nullable=False),
    Column("referral_id", String(64), nullable=False),
    Column("kind", String(24), nullable=False),  # referral_fee, referral_reward, *_clawback
    Column("amount_minor", BigInteger, nullable=False),
    Column("partner_points", BigInteger, nullable=False, server_default="0"),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_partner_fees_partner_at", "partner_id", "at"),
)
