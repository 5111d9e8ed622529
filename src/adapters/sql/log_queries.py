"""The store's queries of the delivery log: what the API and the dashboard read.

Plain SQLAlchemy Core statements, on a connection of their own: none of them is on the delivery
path, so they trade a few microseconds for readable queries. ``SqlStore`` inherits them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from ...core.delivery import DeliveryStatus
from ...core.endpoint import EndpointStatus
from ...core.views import AttemptView, DeliveryView, EndpointHealth, EndpointView, EventView
from .codec import EndpointStates, require_aware
from .reports import health, narrowed
from .rows import attempt_view, delivery_view, event_view
from .schema import attempts, deliveries, endpoints, published_events

__all__ = ["LogQueries"]

T = TypeVar("T")


class LogQueries:
    """The ``DeliveryLog`` port and the endpoint list, for a store that says how to run work
    (``_run``), how to read (``_reading``) and how to open endpoint states (``_states``)."""

    _states: EndpointStates

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def _reading(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    async def list_endpoints(
        self, account_id: str, after: str | None = None, limit: int = 100
    ) -> Sequence[EndpointView]:
        query = select(
            endpoints.c.endpoint_id,
            endpoints.c.version,
            endpoints.c.failing_since,
            endpoints.c.state,
            endpoints.c.failures,
        ).where(endpoints.c.account_id == account_id, endpoints.c.status != EndpointStatus.DELETED.value)
        if after is not None:
            query = query.where(endpoints.c.endpoint_id > after)
        query = query.order_by(endpoints.c.endpoint_id).limit(limit)
        return await self._run(self._endpoint_list, query)

    def _endpoint_list(self, query: Any) -> list[EndpointView]:
        with self._reading() as conn:
            rows = conn.execute(query).all()
        states = self._states.decode_all([row.state for row in rows])
        return [
            EndpointView(st, row.version, row.failing_since, row.failures)
            for st, row in zip(states, rows, strict=True)
        ]

    # --- DeliveryLog ------------------------------------------------------------------------

    async def delivery(self, delivery_id: str) -> DeliveryView | None:
        found = await self._run(
            self._delivery_list, select(deliveries).where(deliveries.c.delivery_id == delivery_id)
        )
        return found[0] if found else None

    async def attempts(self, delivery_id: str) -> Sequence[AttemptView]:
        query = select(attempts).where(attempts.c.delivery_id == delivery_id).order_by(attempts.c.position)
        return await self._run(self._attempt_list, query)

    def _attempt_list(self, query: Any) -> list[AttemptView]:
        with self._reading() as conn:
            return [attempt_view(row) for row in conn.execute(query)]

    async def attempts_of(self, delivery_ids: Collection[str]) -> Mapping[str, Sequence[AttemptView]]:
        wanted = sorted(set(delivery_ids))
        query = select(attempts).where(attempts.c.delivery_id.in_(wanted)).order_by(attempts.c.position)
        return await self._run(self._attempts_by_delivery, query) if wanted else {}

    def _attempts_by_delivery(self, query: Any) -> dict[str, list[AttemptView]]:
        found: dict[str, list[AttemptView]] = {}
        with self._reading() as conn:
            for row in conn.execute(query):
                found.setdefault(row.delivery_id, []).append(attempt_view(row))
        return found

    async def deliveries(
        self,
        account_id: str,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        statuses: Collection[DeliveryStatus] | None = None,
        since: datetime | None = None,
        before: str | None = None,
        limit: int = 100,
        event_type: str | None = None,
        created_from: datetime | None = None,
        created_until: datetime | None = None,
    ) -> Sequence[DeliveryView]:
        query = select(deliveries).where(deliveries.c.account_id == account_id)
        query = narrowed(query, event_type, created_from, created_until)
        if endpoint_id is not None:
            query = query.where(deliveries.c.endpoint_id == endpoint_id)
        if event_id is not None:
            query = query.where(deliveries.c.event_id == event_id)
        if statuses is not None:
            query = query.where(deliveries.c.status.in_([DeliveryStatus(s).value for s in statuses]))
        if since is not None:
            require_aware(since)
            query = query.where(deliveries.c.updated_at >= since)
        if before is not None:
            query = query.where(deliveries.c.delivery_id < before)
        query = query.order_by(deliveries.c.delivery_id.desc()).limit(limit)
        return await self._run(self._delivery_list, query)

    def _delivery_list(self, query: Any) -> list[DeliveryView]:
        with self._reading() as conn:
            return [delivery_view(row) for row in conn.execute(query)]

    async def event(self, account_id: str, event_id: str) -> EventView | None:
        return await self._run(self._event, account_id, event_id)

    async def endpoint_health(
        self, account_id: str, since: datetime, deliveries: int = 2000
    ) -> Mapping[str, EndpointHealth]:
        return await self._run(self._health, account_id, require_aware(since), deliveries)

    def _health(self, account_id: str, since: datetime, count: int) -> Mapping[str, EndpointHealth]:
        with self._reading() as conn:
            return health(conn, account_id, since, count)

    def _event(self, account_id: str, event_id: str) -> EventView | None:
        query = select(published_events).where(
            published_events.c.account_id == account_id, published_events.c.event_id == event_id
        )
        with self._reading() as conn:
            row = conn.execute(query).first()
            return None if row is None else event_view(row)
