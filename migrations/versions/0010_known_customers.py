"""Known customers for the referral guards (points/exchange/tables.py ``known_customers``):
since when the bank's topics show each customer id, and its identity hash.

Seeded from the earning pipeline's ``customer_profiles`` (each profile's ``joined_at``), so the
customers a ledger already knew are recognised by ``already_a_customer`` from the first
onboarding after the upgrade.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
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
    _seed_from_profiles()


EVIDENCE = "customer_profile (on file before known_customers)"


def _seed_from_profiles() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(sa.text(
            "INSERT INTO known_customers (customer_id, known_since, evidence, updated_at) "
            "SELECT customer_id, (profile->>'joined_at')::timestamptz, :evidence, now() "
            "FROM customer_profiles WHERE profile->>'joined_at' IS NOT NULL"
        ).bindparams(evidence=EVIDENCE))
        return
    known = sa.table(
        "known_customers",
        sa.column("customer_id", sa.String()),
        sa.column("known_since", sa.DateTime(timezone=True)),
        sa.column("evidence", sa.String()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)  # UTC: SQLite keeps wall times without their offsets
    rows = []
    for customer_id, profile in bind.execute(
        sa.text("SELECT customer_id, profile FROM customer_profiles")
    ):
        data = json.loads(profile) if isinstance(profile, str) else profile
        if data and data.get("joined_at"):
            rows.append({"customer_id": customer_id, "evidence": EVIDENCE, "updated_at": now,
                         "known_since": datetime.fromisoformat(data["joined_at"]).astimezone(UTC)})
    if rows:
        op.bulk_insert(known, rows)


def downgrade() -> None:
    op.drop_index("ix_known_customers_identity_hash", table_name="known_customers")
    op.drop_table("known_customers")
