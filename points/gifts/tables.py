"""Gift and red packet tables (migration 0012). The points themselves live in the ledger:
these rows say which ledger entries belong to which gift, packet and claim."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from points.db import metadata

__all__ = ["gifts", "packet_claims", "packet_opens", "packet_referrals", "packet_reservations",
           "red_packets"]

gifts = Table(
    "gifts",
    metadata,
    Column("gift_id", String(64), primary_key=True),
    Column("sender_id", String(64), nullable=False),
    Column("recipient_id", String(64), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("message", String(280), nullable=False),
    Column("status", String(12), nullable=False),  # pending, accepted, returned
    Column("hold_key", String(128), nullable=False, unique=True),
    Column("accept_by", DateTime(timezone=True), nullable=False),
    # [[source lot id, points, expires_at iso], ...]: where the recipient's lots came from.
    Column("lineage", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("points > 0", name="points_positive"),
    CheckConstraint("status IN ('pending', 'accepted', 'returned')", name="status"),
    CheckConstraint("sender_id <> recipient_id", name="not_to_oneself"),
    Index("ix_gifts_sender", "sender_id", "created_at"),
    Index("ix_gifts_recipient", "recipient_id", "created_at"),
)

red_packets = Table(
    "red_packets",
    metadata,
    Column("packet_id", String(64), primary_key=True),
    Column("code", String(16), nullable=False, unique=True),
    Column("sender_id", String(64), nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("shares", Integer, nullable=False),
    Column("split", String(8), nullable=False),
    Column("message", String(280), nullable=False),
    # The draw's recorded seed: a share is a pure function of it (points.gifts.split).
    Column("seed", String(64), nullable=False),
    Column("status", String(10), nullable=False),  # open, claimed, expired, voided
    Column("claimed_count", Integer, nullable=False),
    Column("claimed_points", BigInteger, nullable=False),
    # The ledger hold that keeps what is not claimed yet; it moves on at every claim.
    Column("hold_key", String(128), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolved_by", String(64), nullable=True),
    # Maker-checker: an operator asks to void (maker), another approves (checker).
    Column("void_requested_by", String(64), nullable=True),
    Column("void_reason", String(500), nullable=True),
    Column("void_requested_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("total >= shares AND shares >= 1", name="every_share_a_point"),
    CheckConstraint("status <> 'voided' OR resolved_by <> void_requested_by",
                    name="four_eyes_void"),
    CheckConstraint("split IN ('equal', 'random')", name="split"),
    CheckConstraint("status IN ('open', 'claimed', 'expired', 'voided')", name="status"),
    CheckConstraint("claimed_count >= 0 AND claimed_count <= shares", name="claims_in_range"),
    CheckConstraint("claimed_points >= 0 AND claimed_points <= total", name="points_in_range"),
    Index("ix_red_packets_sender", "sender_id", "created_at"),
    Index("ix_red_packets_open_expiry", "status", "expires_at"),
)

packet_claims = Table(
    "packet_claims",
    metadata,
    Column("packet_id", String(64), primary_key=True),
    Column("share_no", Integer, primary_key=True),
    Column("claimant_id", String(64), nullable=False),
    # The claimant's identity hash (or customer id when core banking sent none): one claim
    # per identity per packet, by the database's word.
    Column("identity", String(64), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("remaining_before", BigInteger, nullable=False),
    Column("lineage", JSON, nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=True),
    CheckConstraint("points >= 1", name="points_positive"),
    UniqueConstraint("packet_id", "identity", name="uq_packet_claims_identity"),
    UniqueConstraint("packet_id", "claimant_id", name="uq_packet_claims_claimant"),
    Index("ix_packet_claims_claimant", "claimant_id", "claimed_at"),
)

# Fission: a share kept for a non-customer (by the identity hash they gave) until they onboard
# with the packet's code on bank.customers, or the reservation lapses.
packet_reservations = Table(
    "packet_reservations",
    metadata,
    Column("packet_id", String(64), primary_key=True),
    Column("contact_hash", String(64), primary_key=True),
    Column("reserved_at", DateTime(timezone=True), nullable=False),
    Column("reserved_until", DateTime(timezone=True), nullable=False),
    Column("used_by", String(64), nullable=True),  # the customer id that claimed it
    Index("ix_packet_reservations_until", "packet_id", "reserved_until"),
)

# Who a packet brought to the bank, and at which generation of the sender's own chain.
packet_referrals = Table(
    "packet_referrals",
    metadata,
    Column("referee_id", String(64), primary_key=True),
    Column("referrer_id", String(64), nullable=False),
    Column("packet_id", String(64), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("referral_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    CheckConstraint("generation >= 1", name="generation_positive"),
    Index("ix_packet_referrals_referrer", "referrer_id"),
)

# Who opened a packet, once per person (migration 0015): a customer id when opened in the app,
# "contact:<hash>" when a non-customer reserved a share. The funnel's "opened" step.
packet_opens = Table(
    "packet_opens",
    metadata,
    Column("packet_id", String(64), primary_key=True),
    Column("opener", String(80), primary_key=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
)
