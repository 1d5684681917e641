"""Gifts and red packets (points/gifts/tables.py): ``gifts``, ``red_packets``,
``packet_claims``, and for fission ``packet_reservations`` and ``packet_referrals``. The points
themselves stay in the ledger (holds, lots); these rows name the ledger keys of each gift,
packet and claim. One claim per identity per packet is a unique constraint.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gifts",
        sa.Column("gift_id", sa.String(64), nullable=False),
        sa.Column("sender_id", sa.String(64), nullable=False),
        sa.Column("recipient_id", sa.String(64), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("message", sa.String(280), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("hold_key", sa.String(128), nullable=False),
        sa.Column("accept_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lineage", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("gift_id", name="pk_gifts"),
        sa.UniqueConstraint("hold_key", name="uq_gifts_hold_key"),
        sa.CheckConstraint("points > 0", name="ck_gifts_points_positive"),
        sa.CheckConstraint("status IN ('pending', 'accepted', 'returned')",
                           name="ck_gifts_status"),
        sa.CheckConstraint("sender_id <> recipient_id", name="ck_gifts_not_to_oneself"),
    )
    op.create_index("ix_gifts_sender", "gifts", ["sender_id", "created_at"])
    op.create_index("ix_gifts_recipient", "gifts", ["recipient_id", "created_at"])
    op.create_table(
        "red_packets",
        sa.Column("packet_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("sender_id", sa.String(64), nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("shares", sa.Integer, nullable=False),
        sa.Column("split", sa.String(8), nullable=False),
        sa.Column("message", sa.String(280), nullable=False),
        sa.Column("seed", sa.String(64), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("claimed_count", sa.Integer, nullable=False),
        sa.Column("claimed_points", sa.BigInteger, nullable=False),
        sa.Column("hold_key", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("void_requested_by", sa.String(64), nullable=True),
        sa.Column("void_reason", sa.String(500), nullable=True),
        sa.Column("void_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("packet_id", name="pk_red_packets"),
        sa.CheckConstraint("status <> 'voided' OR resolved_by <> void_requested_by",
                           name="ck_red_packets_four_eyes_void"),
        sa.UniqueConstraint("code", name="uq_red_packets_code"),
        sa.CheckConstraint("total >= shares AND shares >= 1",
                           name="ck_red_packets_every_share_a_point"),
        sa.CheckConstraint("split IN ('equal', 'random')", name="ck_red_packets_split"),
        sa.CheckConstraint("status IN ('open', 'claimed', 'expired', 'voided')",
                           name="ck_red_packets_status"),
        sa.CheckConstraint("claimed_count >= 0 AND claimed_count <= shares",
                           name="ck_red_packets_claims_in_range"),
        sa.CheckConstraint("claimed_points >= 0 AND claimed_points <= total",
                           name="ck_red_packets_points_in_range"),
    )
    op.create_index("ix_red_packets_sender", "red_packets", ["sender_id", "created_at"])
    op.create_index("ix_red_packets_open_expiry", "red_packets", ["status", "expires_at"])
    op.create_table(
        "packet_claims",
        sa.Column("packet_id", sa.String(64), nullable=False),
        sa.Column("share_no", sa.Integer, nullable=False),
        sa.Column("claimant_id", sa.String(64), nullable=False),
        sa.Column("identity", sa.String(64), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("remaining_before", sa.BigInteger, nullable=False),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("packet_id", "share_no", name="pk_packet_claims"),
        sa.UniqueConstraint("packet_id", "identity", name="uq_packet_claims_identity"),
        sa.UniqueConstraint("packet_id", "claimant_id", name="uq_packet_claims_claimant"),
        sa.CheckConstraint("points >= 1", name="ck_packet_claims_points_positive"),
    )
    op.create_index("ix_packet_claims_claimant", "packet_claims", ["claimant_id", "claimed_at"])


    op.create_table(
        "packet_reservations",
        sa.Column("packet_id", sa.String(64), nullable=False),
        sa.Column("contact_hash", sa.String(64), nullable=False),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reserved_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("packet_id", "contact_hash", name="pk_packet_reservations"),
    )
    op.create_index("ix_packet_reservations_until", "packet_reservations",
                    ["packet_id", "reserved_until"])
    op.create_table(
        "packet_referrals",
        sa.Column("referee_id", sa.String(64), nullable=False),
        sa.Column("referrer_id", sa.String(64), nullable=False),
        sa.Column("packet_id", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("referral_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("referee_id", name="pk_packet_referrals"),
        sa.CheckConstraint("generation >= 1", name="ck_packet_referrals_generation_positive"),
    )
    op.create_index("ix_packet_referrals_referrer", "packet_referrals", ["referrer_id"])


def downgrade() -> None:
    op.drop_index("ix_packet_referrals_referrer", table_name="packet_referrals")
    op.drop_table("packet_referrals")
    op.drop_index("ix_packet_reservations_until", table_name="packet_reservations")
    op.drop_table("packet_reservations")
    op.drop_index("ix_packet_claims_claimant", table_name="packet_claims")
    op.drop_table("packet_claims")
    op.drop_index("ix_red_packets_open_expiry", table_name="red_packets")
    op.drop_index("ix_red_packets_sender", table_name="red_packets")
    op.drop_table("red_packets")
    op.drop_index("ix_gifts_recipient", table_name="gifts")
    op.drop_index("ix_gifts_sender", table_name="gifts")
    op.drop_table("gifts")
