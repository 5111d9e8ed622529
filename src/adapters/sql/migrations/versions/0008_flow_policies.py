"""Flow policies (ADR 0015): each endpoint's count of attempts failed in a row (the circuit
breaker's), and the shared rate-limit and probe state of each endpoint (``endpoint_gates``).

Revision ID: 0008_flow_policies
Revises: 0007_ordered_delivery
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_flow_policies"
down_revision = "0007_ordered_delivery"
branch_labels = None
depends_on = None


def _time(name: str) -> sa.Column[object]:
    # Revisions keep their own plain types, so that changing the model's later cannot change them.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    # Existing endpoints start from no failures in a row: at worst a breaker opens a few
    # failures later than it would have (every breaker is off until a webhook turns it on).
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "endpoint_gates",
        sa.Column("endpoint_id", sa.String(160), nullable=False),
        _time("arrival"),
        _time("probe_opened_at"),
        sa.Column("probe_at_failures", sa.Integer(), nullable=False),
        _time("probe_sent_at"),
        sa.PrimaryKeyConstraint("endpoint_id", name="pk_endpoint_gates"),
    )


def downgrade() -> None:
    op.drop_table("endpoint_gates")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("failures")
