"""Operations: maker-checker requests for operator adjustments above the approval threshold.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "adjustment_requests",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("program", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("delta", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_adjustment_requests"),
        sa.UniqueConstraint("idempotency_key", name="uq_adjustment_requests_idempotency_key"),
        sa.CheckConstraint("delta <> 0", name="ck_adjustment_requests_delta_nonzero"),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name="ck_adjustment_requests_status"
        ),
        # Maker-checker: the approver is never the requester.
        sa.CheckConstraint(
            "decided_by IS NULL OR decided_by <> requested_by",
            name="ck_adjustment_requests_four_eyes",
        ),
    )
    op.create_index("ix_adjustment_requests_status", "adjustment_requests", ["status"])


def downgrade() -> None:
    op.drop_index("ix_adjustment_requests_status", table_name="adjustment_requests")
    op.drop_table("adjustment_requests")
