"""Known customers for the referral guards (points/exchange/tables.py ``known_customers``):
since when the bank's topics show each customer id, and its identity hash.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "known_customers",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("known_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence", sa.String(128), nullable=False),
        sa.Column("identity_hash", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_known_customers"),
    )
    op.create_index("ix_known_customers_identity_hash", "known_customers", ["identity_hash"])


def downgrade() -> None:
    op.drop_index("ix_known_customers_identity_hash", table_name="known_customers")
    op.drop_table("known_customers")
