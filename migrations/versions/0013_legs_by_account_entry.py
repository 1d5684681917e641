"""Legs by (account, entry): a customer's activity page reads only its own page of legs.

``GET /v1/me/activity`` pages a customer's entries newest first. With legs indexed by account
alone, PostgreSQL fetched every leg of the customer's accounts and sorted them for each page
(500 entries: 500 heap reads for 20 lines). Indexed by ``(debit_account_id, entry_id)`` and
``(credit_account_id, entry_id)``, each account side is an index range read backwards from the
cursor, stopping after one page (points/api/pgread.py). These replace the single-column
indexes (their prefix serves every query those served), so the writers keep two b-trees on
legs, not four.

On a large existing ledger, build the new indexes with ``CREATE INDEX CONCURRENTLY`` before
running this migration (it then only drops the old ones; ``if_not_exists`` below).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ledger_legs_debit_account_entry", "ledger_legs",
                    ["debit_account_id", "entry_id"], if_not_exists=True)
    op.create_index("ix_ledger_legs_credit_account_entry", "ledger_legs",
                    ["credit_account_id", "entry_id"], if_not_exists=True)
    op.drop_index("ix_ledger_legs_debit_account_id", table_name="ledger_legs")
    op.drop_index("ix_ledger_legs_credit_account_id", table_name="ledger_legs")


def downgrade() -> None:
    op.create_index("ix_ledger_legs_credit_account_id", "ledger_legs", ["credit_account_id"])
    op.create_index("ix_ledger_legs_debit_account_id", "ledger_legs", ["debit_account_id"])
    op.drop_index("ix_ledger_legs_credit_account_entry", table_name="ledger_legs")
    op.drop_index("ix_ledger_legs_debit_account_entry", table_name="ledger_legs")
