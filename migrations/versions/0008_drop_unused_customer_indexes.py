"""Drop the inbox's and the earning records' customer-id indexes.

No query reads either table by customer id: the inbox is read by event id (replays), the
earning records by event id (refunds, the activity feed, which also checks the customer), and
the dashboard reads both by time (the BRIN indexes of 0007). A customer's history is the
ledger's (entries and legs by account). Each of these b-trees cost a random-order insert per
consumed event on the earning pipeline's hot path.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_earning_records_customer_id", table_name="earning_records")
    op.drop_index("ix_inbound_events_customer_id", table_name="inbound_events")


def downgrade() -> None:
    op.create_index("ix_inbound_events_customer_id", "inbound_events", ["customer_id"])
    op.create_index("ix_earning_records_customer_id", "earning_records", ["customer_id"])
