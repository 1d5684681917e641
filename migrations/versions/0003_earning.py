"""Earning pipeline state: customer profiles, rule state, earning records, parked refunds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _now() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "customer_profiles",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("profile", sa.JSON, nullable=False),
        sa.Column("referral_code", sa.String(32), nullable=True),
        _now(),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_profiles"),
        sa.UniqueConstraint("referral_code", name="uq_customer_profiles_referral_code"),
    )
    op.create_table(
        "customer_rule_state",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("events_applied", sa.Integer, nullable=False, server_default="0"),
        _now(),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_rule_state"),
    )
    op.create_table(
        "earning_records",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        _now(),
        sa.PrimaryKeyConstraint("event_id", name="pk_earning_records"),
    )
    op.create_index("ix_earning_records_customer_id", "earning_records", ["customer_id"])
    op.create_table(
        "parked_events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("waiting_for", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column(
            "parked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("event_id", name="pk_parked_events"),
    )
    op.create_index("ix_parked_events_waiting_for", "parked_events", ["waiting_for"])


def downgrade() -> None:
    op.drop_index("ix_parked_events_waiting_for", table_name="parked_events")
    op.drop_table("parked_events")
    op.drop_index("ix_earning_records_customer_id", table_name="earning_records")
    op.drop_table("earning_records")
    op.drop_table("customer_rule_state")
    op.drop_table("customer_profiles")
