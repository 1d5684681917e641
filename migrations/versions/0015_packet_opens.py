"""Packet opens: who opened a red packet, once per person, for the fission funnel.

The operations dashboard and the demo show packets sent -> opened -> claimed -> new
customers, by generation (docs/gifts.md, "The fission funnel"). A claim or a reservation is
recorded already; an open that went no further was not. ``packet_opens`` keeps one row per
packet and opener (a customer id when opened in the app, ``contact:<hash>`` when a
non-customer reserved a share), written with the database's "already there" as the dedupe.

Revision ID: 0015
Revises: 0014_nudges
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014_nudges"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "packet_opens",
        sa.Column("packet_id", sa.String(64), nullable=False),
        sa.Column("opener", sa.String(80), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("packet_id", "opener", name="pk_packet_opens"),
    )


def downgrade() -> None:
    op.drop_table("packet_opens")
