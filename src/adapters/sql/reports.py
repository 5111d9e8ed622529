"""Read-model queries for the dashboard: the delivery log's extra filters and endpoint health.

Kept apart from ``store`` so the store stays a map of the ports; both functions only read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from ...core.views import EndpointHealth
from .codec import require_aware
from .schema import attempts, deliveries

__all__ = ["health", "narrowed"]


def narrowed(
    query: Select[Any],
    event_type: str | None,
    created_from: datetime | None,
    created_until: datetime | None,
) -> Select[Any]:
    """``query`` over ``deliveries`` narrowed to one event type and a creation-time range."""
    if event_type is not None:
        query = query.where(deliveries.c.event_type == event_type)
    if created_from is not None:
        query = query.where(deliveries.c.created_at >= require_aware(created_from))
    if created_until is not None:
        query = query.where(deliveries.c.created_at < require_aware(created_until))
    return query


def health(conn: Connection, account_id: str, since: datetime) -> Mapping[str, EndpointHealth]:
    """Per endpoint: attempts started since ``since``, how many succeeded, and the latest one.

    Two statements whatever the number of endpoints: the aggregate (whose ``max(position)`` is
    the latest attempt, positions being the global order), then those latest attempts' outcomes.
    """
    joined = attempts.join(deliveries, attempts.c.delivery_id == deliveries.c.delivery_id)
    rows = conn.execute(
        select(
            deliveries.c.endpoint_id,
            func.count(),
            func.sum(attempts.c.succeeded.cast(deliveries.c.attempts.type)),
            func.max(attempts.c.position),
        )
        .select_from(joined)
        .where(deliveries.c.account_id == account_id, attempts.c.started_at >= since)
        .group_by(deliveries.c.endpoint_id)
    ).all()
    latest = {row[3] for row in rows}
    last = {
        row.position: (row.started_at, row.succeeded)
        for row in conn.execute(
            select(attempts.c.position, attempts.c.started_at, attempts.c.succeeded).where(
                attempts.c.position.in_(latest)
            )
        )
    }
    return {
        endpoint_id: EndpointHealth(int(count), int(succeeded or 0), *last[position])
        for endpoint_id, count, succeeded, position in rows
    }
