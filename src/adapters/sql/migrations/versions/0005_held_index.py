"""A partial index of held deliveries, so counting them (``queue_stats``: /metrics, /readyz,
the dashboard) reads the held rows only, not the whole delivery history.

Revision ID: 0005_held_index
Revises: 0004_lease_attempts
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_held_index"
down_revision = "0004_lease_attempts"
branch_labels = None
depends_on = None

_HELD = sa.text("status = 'held'")


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_held",
        "deliveries",
        ["endpoint_id"],
        sqlite_where=_HELD,
        postgresql_where=_HELD,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_held", "deliveries")
