"""The memory store's retention (``core.ports.History``, ADR 0018): ``MemoryStore`` inherits it.

The same rules as the SQL store's (``core.retention``): an event goes with all its deliveries,
their attempts and their streams, only when every one is final and older than the horizon.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING

from ..core.events import event_stream
from ..core.ports import RecordedEvent
from ..core.retention import PurgeReport, endpoint_purgeable, event_purgeable, next_cursor
from ..core.views import AttemptView, EndpointView, EventView

if TYPE_CHECKING:
    from .memory import _DeliveryRow

__all__ = ["MemoryHistory"]


class MemoryHistory:
    """Purging for a store that keeps these collections (``MemoryStore``'s fields)."""

    _streams: dict[str, list[RecordedEvent]]
    _log: list[RecordedEvent]
    _endpoints: dict[str, EndpointView]
    _account_endpoints: dict[str, list[str]]
    _events: dict[tuple[str, str], EventView]
    _deliveries: dict[str, _DeliveryRow]
    _account_deliveries: dict[str, list[str]]
    _attempts: dict[str, list[AttemptView]]
    _tombstones: dict[tuple[str, str], tuple[datetime, datetime]]

    async def purge_events(
        self, horizon: datetime, now: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> PurgeReport:
        keys = ((view.published_at, view.account_id, view.event_id) for view in self._events.values())
        looked = sorted(key for key in keys if key[0] < horizon and (after is None or key > after))[:limit]
        if not looked:
            return PurgeReport()
        wanted = {(account_id, event_id) for _, account_id, event_id in looked}
        by_event: dict[tuple[str, str], list[str]] = {key: [] for key in wanted}
        for delivery_id, row in self._deliveries.items():
            state = row.view.delivery
            found = by_event.get((state.account_id, state.event_id))
            if found is not None:
                found.append(delivery_id)
        newest = self._log[-1].stream_id if self._log else None
        events = deliveries = attempts = 0
        examined = 0
        for published_at, account_id, event_id in looked:
            if deliveries >= limit:
                break  # enough for one transaction: the rest is the next batch's
            examined += 1
            delivery_ids = by_event[(account_id, event_id)]
            rows = [self._deliveries[i].view for i in delivery_ids]
            statuses = [(view.delivery.status, view.updated_at) for view in rows]
            streams = {event_stream(account_id, event_id), *delivery_ids}
            if not event_purgeable(published_at, statuses, horizon) or newest in streams:
                continue
            for delivery_id in delivery_ids:
                del self._deliveries[delivery_id]
                attempts += len(self._attempts.pop(delivery_id, ()))
            if delivery_ids:
                gone = set(delivery_ids)
                listed = self._account_deliveries[account_id]
                listed[:] = [i for i in listed if i not in gone]
            del self._events[(account_id, event_id)]
            self._drop_streams(streams)
            self._tombstones[(account_id, event_id)] = (published_at, now)
            events += 1
            deliveries += len(delivery_ids)
        cursor = next_cursor(looked, examined, limit)
        return PurgeReport(events=events, deliveries=deliveries, attempts=attempts, cursor=cursor)

    def _drop_streams(self, streams: Collection[str]) -> None:
        for stream_id in streams:
            self._streams.pop(stream_id, None)
        self._log = [recorded for recorded in self._log if recorded.stream_id not in streams]

    async def purge_deleted(self, horizon: datetime, limit: int) -> PurgeReport:
        endpoints_left = {row.view.delivery.endpoint_id for row in self._deliveries.values()}
        newest = self._log[-1].stream_id if self._log else None
        gone: list[str] = []
        for endpoint_id, view in self._endpoints.items():
            state = view.endpoint
            left = endpoint_id in endpoints_left or endpoint_id == newest
            if endpoint_purgeable(state.status, state.updated_at, left, horizon):
                gone.append(endpoint_id)
                if len(gone) >= limit:
                    break
        for endpoint_id in gone:
            account_id = self._endpoints.pop(endpoint_id).endpoint.account_id
            self._account_endpoints[account_id].remove(endpoint_id)
        if gone:
            self._drop_streams(set(gone))
        expired = [key for key, (_, purged_at) in self._tombstones.items() if purged_at < horizon][:limit]
        for key in expired:
            del self._tombstones[key]
        return PurgeReport(endpoints=len(gone), tombstones=len(expired))

    async def purged_event(self, account_id: str, event_id: str) -> tuple[datetime, datetime] | None:
        return self._tombstones.get((account_id, event_id))
