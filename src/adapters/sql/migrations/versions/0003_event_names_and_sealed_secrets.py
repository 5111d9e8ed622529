"""Stored event names instead of class names; webhook secrets sealed with per-secret data keys.

1. ``events.event_type`` held the Python class name; it now holds the registered name
   (``codec.REGISTRY``), so classes can be renamed without touching the log.
2. ``secret_keys`` (one data key per secret, wrapped by a master key) and ``development_key``.
3. Secrets written in plaintext by earlier releases are sealed in place, in the log and in the
   endpoints read model (ADR 0010). Secrets that no longer sign (a deleted endpoint's, a rotated-out
   one past its grace, or replaced by a second rotation) are not sealed but shredded: emptied.
   The master key comes from the migration's config (``secret_keyring``); without one, from the
   database's development key, created if need be.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# mypy checks src/ as the package "src"; Alembic runs this file from the installed package.
from attribution_webhooks.adapters.sql.legacy_secrets import seal_plaintext_secrets  # type: ignore[import-not-found]

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = 160

# Frozen here: the names as this revision wrote them, whatever the code calls them later.
NAMES = {
    "EndpointRegistered": "endpoint.registered",
    "EndpointUpdated": "endpoint.updated",
    "SecretRotated": "endpoint.secret_rotated",
    "EndpointDisabled": "endpoint.disabled",
    "EndpointEnabled": "endpoint.enabled",
    "EndpointDeleted": "endpoint.deleted",
    "EventPublished": "event.published",
    "DeliveryScheduled": "delivery.scheduled",
    "DeliveryHeld": "delivery.held",
    "DeliveryReleased": "delivery.released",
    "AttemptSucceeded": "delivery.attempt_succeeded",
    "AttemptFailed": "delivery.attempt_failed",
    "RetryScheduled": "delivery.retry_scheduled",
    "DeliveryFailed": "delivery.failed",
    "RedeliveryRequested": "delivery.redelivery_requested",
    "DeliveryCancelled": "delivery.cancelled",
}


def upgrade() -> None:
    op.create_table(
        "secret_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint_id", sa.String(length=_ID), nullable=False),
        sa.Column("master_id", sa.String(length=32), nullable=False),
        sa.Column("wrapped", sa.Text(), nullable=False),
        sa.Column("destroy_after", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_secret_keys"),
    )
    op.create_index("ix_secret_keys_endpoint_id", "secret_keys", ["endpoint_id"])
    op.create_index("ix_secret_keys_destroy_after", "secret_keys", ["destroy_after"])
    op.create_table(
        "development_key",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_development_key"),
    )
    conn = op.get_bind()
    for old, new in NAMES.items():
        conn.execute(
            sa.text("UPDATE events SET event_type = :new WHERE event_type = :old"), {"new": new, "old": old}
        )
    config = op.get_context().config
    seal_plaintext_secrets(conn, config.attributes.get("secret_keyring") if config is not None else None)


def downgrade() -> None:
    conn = op.get_bind()
    for old, new in NAMES.items():
        conn.execute(
            sa.text("UPDATE events SET event_type = :old WHERE event_type = :new"), {"new": new, "old": old}
        )
    # Sealed secrets stay sealed: an earlier release reads the tokens as (unusable) secrets.
    op.drop_table("development_key")
    op.drop_table("secret_keys")
