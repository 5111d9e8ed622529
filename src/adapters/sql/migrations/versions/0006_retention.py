"""Retention (ADR 0018): an index to walk published events oldest first, and the tombstones of
events that retention removed.

Revision ID: 0006_retention
Revises: 0005_held_index
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_retention"
down_revision = "0005_held_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_published_events_published_at_account_id_event_id",
        "published_events",
        ["published_at", "account_id", "event_id"],
    )
    op.create_table(
        "purged_events",
        sa.Column("account_id", sa.String(160), nullable=False),
        sa.Column("event_id", sa.String(160), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "event_id", name="pk_purged_events"),
    )
    op.create_index("ix_purged_events_purged_at", "purged_events", ["purged_at"])


def downgrade() -> None:
    op.drop_index("ix_purged_events_purged_at", table_name="purged_events")
    op.drop_table("purged_events")
    op.drop_index("ix_published_events_published_at_account_id_event_id", table_name="published_events")
