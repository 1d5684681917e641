"""Partner exchange: member links, quotes, swaps and replies, inbound swaps, referral codes,
referrals and partner fees (points.exchange.tables).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_swaps",
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("partner_reference", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("partner_units", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("ledger_key", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "partner_reference", name=op.f("pk_inbound_swaps")),
        sa.UniqueConstraint("ledger_key", name=op.f("uq_inbound_swaps_ledger_key")),
    )
    op.create_table(
        "partner_fees",
        sa.Column("fee_key", sa.String(length=128), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("partner_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fee_key", name=op.f("pk_partner_fees")),
    )
    op.create_index(
        "ix_partner_fees_partner_at", "partner_fees", ["partner_id", "at"], unique=False
    )
    op.create_table(
        "partner_links",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("partner_member_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "partner_id", name=op.f("pk_partner_links")),
        sa.UniqueConstraint("request_id", name=op.f("uq_partner_links_request_id")),
    )
    op.create_table(
        "referral_codes",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_referral_codes")),
        sa.UniqueConstraint(
            "owner_kind", "owner_id", name=op.f("uq_referral_codes_owner_kind_owner_id")
        ),
    )
    op.create_table(
        "referrals",
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("referrer_kind", sa.String(length=16), nullable=False),
        sa.Column("referrer_id", sa.String(length=64), nullable=False),
        sa.Column("referee_id", sa.String(length=64), nullable=True),
        sa.Column("code", sa.String(length=16), nullable=True),
        sa.Column("partner_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("invited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("qualify_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("qualifying_event_id", sa.String(length=64), nullable=True),
        sa.Column("qualified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rewards", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_referrals")),
    )
    op.create_index("ix_referrals_referee", "referrals", ["referee_id"], unique=False)
    op.create_index(
        "ix_referrals_referrer",
        "referrals",
        ["referrer_kind", "referrer_id", "signed_up_at"],
        unique=False,
    )
    op.create_index(
        "uq_referrals_active_referee",
        "referrals",
        ["referee_id"],
        unique=True,
        postgresql_where=sa.text("referee_id IS NOT NULL AND status <> 'refused'"),
        sqlite_where=sa.text("referee_id IS NOT NULL AND status <> 'refused'"),
    )
    op.create_table(
        "swap_quotes",
        sa.Column("quote_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("rate_version", sa.String(length=64), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("fee_points", sa.BigInteger(), nullable=False),
        sa.Column("partner_units", sa.BigInteger(), nullable=False),
        sa.Column("rate_num", sa.BigInteger(), nullable=False),
        sa.Column("rate_den", sa.BigInteger(), nullable=False),
        sa.Column("quoted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("quote_id", name=op.f("pk_swap_quotes")),
    )
    op.create_table(
        "swap_replies",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("swap_id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=True),
        sa.Column("partner_units", sa.BigInteger(), nullable=True),
        sa.Column("partner_reference", sa.String(length=128), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_swap_replies")),
    )
    op.create_index(op.f("ix_swap_replies_swap_id"), "swap_replies", ["swap_id"], unique=False)
    op.create_table(
        "swaps",
        sa.Column("swap_id", sa.String(length=64), nullable=False),
        sa.Column("quote_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("partner_member_id", sa.String(length=128), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("fee_points", sa.BigInteger(), nullable=False),
        sa.Column("partner_units", sa.BigInteger(), nullable=False),
        sa.Column("rate_version", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("partner_reference", sa.String(length=128), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("swap_id", name=op.f("pk_swaps")),
        sa.UniqueConstraint("quote_id", name=op.f("uq_swaps_quote_id")),
    )
    op.create_index(
        "ix_swaps_customer_partner",
        "swaps",
        ["customer_id", "partner_id", "requested_at"],
        unique=False,
    )
    op.create_index(
        "ix_swaps_open_deadline",
        "swaps",
        ["deadline_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('requested', 'pending')"),
        sqlite_where=sa.text("status IN ('requested', 'pending')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_swaps_open_deadline",
        table_name="swaps",
        postgresql_where=sa.text("status IN ('requested', 'pending')"),
        sqlite_where=sa.text("status IN ('requested', 'pending')"),
    )
    op.drop_index("ix_swaps_customer_partner", table_name="swaps")
    op.drop_table("swaps")
    op.drop_index(op.f("ix_swap_replies_swap_id"), table_name="swap_replies")
    op.drop_table("swap_replies")
    op.drop_table("swap_quotes")
    op.drop_index(
        "uq_referrals_active_referee",
        table_name="referrals",
        postgresql_where=sa.text("referee_id IS NOT NULL AND status <> 'refused'"),
        sqlite_where=sa.text("referee_id IS NOT NULL AND status <> 'refused'"),
    )
    op.drop_index("ix_referrals_referrer", table_name="referrals")
    op.drop_index("ix_referrals_referee", table_name="referrals")
    op.drop_table("referrals")
    op.drop_table("referral_codes")
    op.drop_table("partner_links")
    op.drop_index("ix_partner_fees_partner_at", table_name="partner_fees")
    op.drop_table("partner_fees")
    op.drop_table("inbound_swaps")
