"""Read-model queries for the dashboard (the delivery log's extra filters and endpoint health)
and for monitoring (the queue's counts).

Kept apart from ``store`` so the store stays a map of the ports; both functions only read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, case, func, or_, select, union_all

from ...core.delivery import DeliveryStatus
from ...core.endpoint import EndpointStatus
from ...core.outcomes import ErrorKind
from ...core.views import EndpointHealth, QueueStats
from .codec import require_aware
from .schema import attempts, deliveries, endpoints

__all__ = ["health", "narrowed", "queue_stats"]


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


def health(conn: Connection, account_id: str, since: datetime, count: int) -> Mapping[str, EndpointHealth]:
    """Per endpoint: attempts started since ``since`` among its latest ``count`` deliveries, how
    many succeeded, and the latest one.

    Each endpoint's latest deliveries come from the ``(account_id, endpoint_id, delivery_id)``
    index, so the work is bounded by ``count`` per endpoint, not by the account's traffic. Two
    statements whatever the number of endpoints: the aggregate (whose ``max(position)`` is the
    latest attempt, positions being the global order), then those latest attempts' outcomes.
    """
    endpoint_ids = (
        conn.execute(select(endpoints.c.endpoint_id).where(endpoints.c.account_id == account_id))
        .scalars()
        .all()
    )
    if not endpoint_ids:
        return {}
    latest = union_all(
        *(
            select(deliveries.c.delivery_id, deliveries.c.endpoint_id)
            .where(deliveries.c.account_id == account_id, deliveries.c.endpoint_id == endpoint_id)
            .order_by(deliveries.c.delivery_id.desc())
            .limit(count)
            .subquery()
            .select()
            for endpoint_id in endpoint_ids
        )
    ).subquery()
    rows = conn.execute(
        select(
            latest.c.endpoint_id,
            func.count(),
            func.sum(case((attempts.c.succeeded, 1), else_=0)),
            func.max(attempts.c.position),
        )
        .select_from(latest.join(attempts, attempts.c.delivery_id == latest.c.delivery_id))
        # Abandoned attempts (outcome unknown: our worker was lost) count neither way
        # (``core.projections.tells_health``).
        .where(attempts.c.started_at >= since, _known_outcome)
        .group_by(latest.c.endpoint_id)
    ).all()
    positions = [row[3] for row in rows]
    last = {
        row.position: (row.started_at, row.succeeded)
        for row in conn.execute(
            select(attempts.c.position, attempts.c.started_at, attempts.c.succeeded).where(
                attempts.c.position.in_(positions)
            )
        )
    }
    return {
        endpoint_id: EndpointHealth(int(total), int(succeeded or 0), *last[position])
        for endpoint_id, total, succeeded, position in rows
    }


_known_outcome = or_(attempts.c.error.is_(None), attempts.c.error != ErrorKind.WORKER_LOST.value)


def queue_stats(conn: Connection, now: datetime) -> QueueStats:
    """The queue's counts at ``now``. The pending and due counts read the claim's partial index
    (their cost follows the queue, not the history); held deliveries are counted by a scan of
    ``deliveries`` filtered on status, and disabled endpoints by a scan of ``endpoints``."""
    queue_at = deliveries.c.queue_at
    is_due = queue_at <= require_aware(now)
    pending, due, oldest = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((is_due, 1), else_=0)), 0),
            func.min(case((is_due, queue_at), else_=None)),
        ).where(queue_at.isnot(None))
    ).one()
    # Deliveries parked behind their line's head (ADR 0016) wait for an attempt too; the lines'
    # partial index holds only deliveries in a line.
    parked = conn.execute(
        select(func.count()).where(
            deliveries.c.line_position.isnot(None),
            queue_at.is_(None),
            deliveries.c.status.in_((DeliveryStatus.SCHEDULED.value, DeliveryStatus.RETRYING.value)),
        )
    ).scalar_one()
    held = conn.execute(
        select(func.count()).where(deliveries.c.status == DeliveryStatus.HELD.value)
    ).scalar_one()
    disabled = conn.execute(
        select(func.count()).where(endpoints.c.status == EndpointStatus.DISABLED.value)
    ).scalar_one()
    return QueueStats(
        pending=pending + parked, due=int(due), oldest_due_at=oldest, held=held, disabled_endpoints=disabled
    )
