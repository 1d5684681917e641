"""BRIN indexes for the operations dashboard's time windows (PostgreSQL only).

The dashboard asks "events in the last 10 minutes" and "points by rule in the last 24 hours".
Without an index those scan the whole inbox and earning records. A BRIN index stores one
summary per block range, costs almost nothing to maintain on append-mostly tables, and is
tiny — unlike a b-tree, it adds no per-row work to the hot insert path. SQLite (the embedded
ledger) keeps scanning: it serves one process at demo scale.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE INDEX brin_inbound_events_received_at ON inbound_events USING brin (received_at)"
    )
    op.execute(
        "CREATE INDEX brin_earning_records_updated_at ON earning_records USING brin (updated_at)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX brin_earning_records_updated_at")
    op.execute("DROP INDEX brin_inbound_events_received_at")
