"""One bank customer per partner membership; the operations dashboard's login sessions.

- ``uq_partner_links_membership``: a partial unique index on (partner_id, partner_member_id)
  over links that are ``requested`` or ``linked`` (points/exchange/memberships.py). Memberships
  already held by several customers are resolved first: the link that was confirmed (else
  asked) first keeps it; each other one becomes ``rejected`` with reason
  ``membership_already_linked`` and a recorded refusal (subject ``member_link``), so
  operations find every customer who lost a link in ``refusals``.
- ``api_ops_sessions``: one row per ``/ops`` login (points/api/ops.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

HOLDING = "status IN ('requested', 'linked')"
REASON = ("membership_already_linked: partner membership {partner}/{member} was linked to "
          "several bank customers; another customer's link came first (migration 0011)")


def _resolve_shared_memberships() -> None:
    conn = op.get_bind()
    links = sa.table(
        "partner_links", sa.column("customer_id"), sa.column("partner_id"),
        sa.column("partner_member_id"), sa.column("status"), sa.column("request_id"),
        sa.column("reason"), sa.column("updated_at"),
    )
    refusals = sa.table(
        "refusals", sa.column("dedupe_key"), sa.column("source"), sa.column("subject"),
        sa.column("subject_id"), sa.column("customer_id"), sa.column("reason_code"),
        sa.column("reason"), sa.column("at"),
    )
    shared = conn.execute(sa.text(
        f"SELECT partner_id, partner_member_id FROM partner_links WHERE {HOLDING} "
        "GROUP BY partner_id, partner_member_id HAVING COUNT(*) > 1"
    )).all()
    now = datetime.now(UTC)
    for partner_id, member_id in shared:
        holders = conn.execute(
            sa.select(links.c.customer_id, links.c.status, links.c.request_id,
                      links.c.updated_at)
            .where(links.c.partner_id == partner_id, links.c.partner_member_id == member_id,
                   links.c.status.in_(("requested", "linked")))
        ).all()
        # linked before requested, then the earliest; the customer id breaks ties.
        _keeper, *losers = sorted(
            holders, key=lambda h: (h.status != "linked", h.updated_at, h.customer_id))
        reason = REASON.format(partner=partner_id, member=member_id)[:500]
        for loser in losers:
            conn.execute(
                sa.update(links)
                .where(links.c.customer_id == loser.customer_id,
                       links.c.partner_id == partner_id)
                .values(status="rejected", reason=reason, updated_at=now)
            )
            conn.execute(sa.insert(refusals).values(
                dedupe_key=f"link-migrated:{loser.request_id}"[:200], source="partners",
                subject="member_link", subject_id=loser.request_id,
                customer_id=loser.customer_id, reason_code="membership_already_linked",
                reason=reason, at=now,
            ))


def upgrade() -> None:
    _resolve_shared_memberships()
    op.create_index(
        "uq_partner_links_membership", "partner_links", ["partner_id", "partner_member_id"],
        unique=True, postgresql_where=sa.text(HOLDING), sqlite_where=sa.text(HOLDING),
    )
    op.create_table(
        "api_ops_sessions",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_hash", name="pk_api_ops_sessions"),
    )
    op.create_index("ix_api_ops_sessions_expires_at", "api_ops_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_api_ops_sessions_expires_at", table_name="api_ops_sessions")
    op.drop_table("api_ops_sessions")
    op.drop_index("uq_partner_links_membership", table_name="partner_links")
