"""The attempt number of a delivery's latest lease, so an attempt lost with its worker is never
numbered twice (ADR 0014).

Revision ID: 0004_lease_attempts
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_lease_attempts"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: rows leased before the upgrade take their next number as before.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("lease_attempt", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("lease_attempt")
