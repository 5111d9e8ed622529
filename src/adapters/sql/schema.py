"""The tables: the event log and the read models derived from it, as SQLAlchemy Core metadata.

The Alembic revisions in ``migrations/versions`` create exactly this (a test compares them).
Read models are disposable: ``rebuild_read_models`` refills them from ``events``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from ...core.delivery import DeliveryStatus
from .codec import require_aware

__all__ = [
    "READ_MODELS",
    "UtcDateTime",
    "attempts",
    "deliveries",
    "development_key",
    "endpoint_gates",
    "endpoints",
    "events",
    "metadata",
    "published_events",
    "purged_events",
    "secret_keys",
]

# Explicit constraint names, so that migrations can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_ID = 160  # ids are short (``dlv_`` + a ULID); stream ids of published events are longer


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in, an aware UTC datetime out; a naive one is refused.

    PostgreSQL stores ``timestamptz``; SQLite stores UTC text in one fixed format, so that text
    order is time order (the queue's index relies on it).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = require_aware(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# --- the event log -------------------------------------------------------------------------------

events = Table(
    "events",
    metadata,
    # Assigned by the appender (under the write lock), so positions are gapless and commit in order.
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("stream_id", String(_ID), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("data", Text, nullable=False),
    # The optimistic-concurrency guard: two writers cannot both add version n to a stream.
    UniqueConstraint("stream_id", "version"),
)

# --- read models ---------------------------------------------------------------------------------

endpoints = Table(
    "endpoints",
    metadata,
    Column("endpoint_id", String(_ID), primary_key=True),
    Column("account_id", String(_ID), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("failing_since", UtcDateTime, nullable=True),
    # Position of EndpointRegistered: subscribers come back in registration order.
    Column("registered_position", BigInteger, nullable=False),
    # The folded ``Endpoint``, through the storage converter.
    Column("state", Text, nullable=False),
    # Attempts failed in a row (``projections.next_failures``): the circuit breaker's count.
    Column("failures", Integer, nullable=False, server_default="0"),
    Index(None, "account_id", "endpoint_id"),
)

published_events = Table(
    "published_events",
    metadata,
    Column("account_id", String(_ID), primary_key=True),
    Column("event_id", String(_ID), primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
    Column("test", Boolean, nullable=False),
    # Retention walks events oldest first (ADR 0018): a keyset cursor over this index.
    Index(None, "published_at", "account_id", "event_id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", String(_ID), primary_key=True),
    Column("account_id", String(_ID), nullable=False),
    Column("endpoint_id", String(_ID), nullable=False),
    Column("event_id", String(_ID), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("test", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("due_at", UtcDateTime, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(32), nullable=True),
    # The queue. ``queue_at``: when the delivery can next be claimed; NULL unless it is pending,
    # so finished deliveries are outside the partial index below and never in the claim's path.
    # A claim pushes ``queue_at`` to the lease's expiry (a live worker's heartbeat renews it)
    # and sets ``lease``; any recorded event of the delivery clears ``lease`` and sets
    # ``queue_at`` from its new state.
    Column("queue_at", UtcDateTime, nullable=True),
    Column("lease", String(64), nullable=True),
    # The attempt number of the latest lease (see ``DeliveryQueue.claim``): kept when a worker
    # dies mid-attempt, so the next lease takes the next number; cleared by any recorded event.
    Column("lease_attempt", Integer, nullable=True),
    # Ordered delivery (ADR 0016): the delivery's place in its endpoint's line (the log position
    # of the event that put it there) while it is in one; NULL otherwise. Of a line, only the
    # head has a ``queue_at``; the others are parked until they become the head.
    Column("line_position", BigInteger, nullable=True),
    Index(None, "account_id", "delivery_id"),
    Index(None, "account_id", "endpoint_id", "delivery_id"),
    Index(None, "account_id", "event_id"),
)

# The claim's index: pending deliveries only, so its size and the claim's cost follow the queue,
# not the history (measured in ADR 0004: flat from 10 thousand to 1 million pending rows).
_pending = deliveries.c.queue_at.isnot(None)
Index(
    "ix_deliveries_queue",
    deliveries.c.queue_at,
    deliveries.c.delivery_id,
    sqlite_where=_pending,
    postgresql_where=_pending,
)

# Held deliveries (endpoint disabled) only: counting them reads them, not the history.
_held = deliveries.c.status == DeliveryStatus.HELD.value
Index("ix_deliveries_held", deliveries.c.endpoint_id, sqlite_where=_held, postgresql_where=_held)

# The lines of ordered endpoints: deliveries in a line only, so it costs nothing to the others.
_in_line = deliveries.c.line_position.isnot(None)
Index(
    "ix_deliveries_line",
    deliveries.c.endpoint_id,
    deliveries.c.line_position,
    sqlite_where=_in_line,
    postgresql_where=_in_line,
)

attempts = Table(
    "attempts",
    metadata,
    # The global position of the attempt's event: oldest first is position order.
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("delivery_id", String(_ID), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("elapsed_ms", Float, nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", String(32), nullable=True),
    Column("detail", Text, nullable=False),
    Column("response_body", Text, nullable=False),
    Index(None, "delivery_id", "position"),
)

# --- flow gates (not a read model: operational state, like a lease; ADR 0015) -------------------

endpoint_gates = Table(
    "endpoint_gates",
    metadata,
    Column("endpoint_id", String(_ID), primary_key=True),
    # ``core.flow.Gate``: the rate limit's theoretical arrival time, the breaker's last probe.
    Column("arrival", UtcDateTime, nullable=True),
    Column("probe_opened_at", UtcDateTime, nullable=True),
    Column("probe_at_failures", Integer, nullable=False),
    Column("probe_sent_at", UtcDateTime, nullable=True),
)

# --- key material (not read models: a rebuild keeps it; see secret_keys.py and ADR 0010) --------

secret_keys = Table(
    "secret_keys",
    metadata,
    # One data key per stored webhook secret, wrapped by master key ``master_id`` of the keyring.
    Column("key_id", String(32), primary_key=True),
    Column("endpoint_id", String(_ID), nullable=False),
    Column("master_id", String(32), nullable=False),
    Column("wrapped", Text, nullable=False),
    # Set when the secret's rotation grace period is to end: the key is destroyed then.
    Column("destroy_after", UtcDateTime, nullable=True),
    Index(None, "endpoint_id"),
    Index(None, "destroy_after"),
)

# Development mode without a configured keyring: a master key kept in the database itself (which
# still makes deleted secrets unrecoverable, but protects nothing if the database leaks).
development_key = Table(
    "development_key",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("key", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# --- retention's tombstones (not a read model: a rebuild keeps them; ADR 0018) -------------------

purged_events = Table(
    "purged_events",
    metadata,
    # A published event that retention removed: ``GET /events/{id}`` says so (410) rather than
    # 404, until the tombstone itself is older than the retention age.
    Column("account_id", String(_ID), primary_key=True),
    Column("event_id", String(_ID), primary_key=True),
    Column("published_at", UtcDateTime, nullable=False),
    Column("purged_at", UtcDateTime, nullable=False),
    Index(None, "purged_at"),
)

#: Every table derived from ``events``, in the order a rebuild empties them.
READ_MODELS = (attempts, deliveries, published_events, endpoints)
