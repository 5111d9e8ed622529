"""Ordered delivery: a delivery's place in its endpoint's line, and the index of the lines (ADR 0016).

Revision ID: 0007_ordered_delivery
Revises: 0006_retention
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_ordered_delivery"
down_revision = "0006_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, nothing to fill: no endpoint was ordered before this revision, so no delivery
    # is in a line (``rebuild_read_models`` fills it from the log, as every read-model column).
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("line_position", sa.BigInteger(), nullable=True))
    in_line = sa.text("line_position IS NOT NULL")
    op.create_index(
        "ix_deliveries_line",
        "deliveries",
        ["endpoint_id", "line_position"],
        sqlite_where=in_line,
        postgresql_where=in_line,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_line", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("line_position")
