"""The initial schema: the event log and the read models (endpoints, published events,
deliveries with their queue columns, attempts).

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = 160


def _time(name: str, nullable: bool) -> sa.Column[object]:
    # Revisions keep their own plain types, so that changing the model's later cannot change them.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("stream_id", sa.String(length=_ID), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_events"),
        sa.UniqueConstraint("stream_id", "version", name="uq_events_stream_id_version"),
    )
    op.create_table(
        "endpoints",
        sa.Column("endpoint_id", sa.String(length=_ID), nullable=False),
        sa.Column("account_id", sa.String(length=_ID), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _time("failing_since", nullable=True),
        sa.Column("registered_position", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("endpoint_id", name="pk_endpoints"),
    )
    op.create_index("ix_endpoints_account_id_endpoint_id", "endpoints", ["account_id", "endpoint_id"])
    op.create_table(
        "published_events",
        sa.Column("account_id", sa.String(length=_ID), nullable=False),
        sa.Column("event_id", sa.String(length=_ID), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _time("occurred_at", nullable=False),
        _time("published_at", nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "event_id", name="pk_published_events"),
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.String(length=_ID), nullable=False),
        sa.Column("account_id", sa.String(length=_ID), nullable=False),
        sa.Column("endpoint_id", sa.String(length=_ID), nullable=False),
        sa.Column("event_id", sa.String(length=_ID), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("due_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        _time("last_attempt_at", nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=32), nullable=True),
        _time("queue_at", nullable=True),
        sa.Column("lease", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_account_id_delivery_id", "deliveries", ["account_id", "delivery_id"])
    op.create_index(
        "ix_deliveries_account_id_endpoint_id_delivery_id",
        "deliveries",
        ["account_id", "endpoint_id", "delivery_id"],
    )
    op.create_index("ix_deliveries_account_id_event_id", "deliveries", ["account_id", "event_id"])
    pending = sa.text("queue_at IS NOT NULL")
    op.create_index(
        "ix_deliveries_queue",
        "deliveries",
        ["queue_at", "delivery_id"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_table(
        "attempts",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("delivery_id", sa.String(length=_ID), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _time("started_at", nullable=False),
        sa.Column("elapsed_ms", sa.Float(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_attempts"),
    )
    op.create_index("ix_attempts_delivery_id_position", "attempts", ["delivery_id", "position"])


def downgrade() -> None:
    for table in ("attempts", "deliveries", "published_events", "endpoints", "events"):
        op.drop_table(table)
