"""Nudges (points/nudges/tables.py): ``nudges``, one row per nudge decided, sent or
suppressed; its primary key (a hash of nudge, customer and cause) is the idempotency of
``customer.nudges``.

Named ``0014_nudges`` so that another branch's 0014 does not collide with it by id; if both
land, the later one's ``down_revision`` moves to the other.

Revision ID: 0014_nudges
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_nudges"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nudges",
        sa.Column("nudge_id", sa.String(64), nullable=False),
        sa.Column("nudge", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("cause", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("reason_code", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("local_day", sa.Date, nullable=False),
        sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("offer_id", sa.String(100), nullable=True),
        sa.Column("message", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("nudge_id", name="pk_nudges"),
        sa.CheckConstraint("outcome IN ('sent', 'suppressed')", name="ck_nudges_outcome"),
    )
    op.create_index("ix_nudges_customer_day", "nudges", ["customer_id", "local_day"])
    op.create_index("ix_nudges_decided", "nudges", ["decided_at"])


def downgrade() -> None:
    op.drop_index("ix_nudges_decided", table_name="nudges")
    op.drop_index("ix_nudges_customer_day", table_name="nudges")
    op.drop_table("nudges")
