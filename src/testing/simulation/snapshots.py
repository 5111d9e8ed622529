"""The snapshot audit: every read-model row a store hands out is the fold of its stream.

ADR 0002 says how state is derived: an aggregate's state is the fold of its stream
(``endpoint.fold``, ``delivery.fold``), and a read-model row is a snapshot of that fold at the
row's ``version``, kept by the store in the transaction that appends the events. The deciders
are given rows, never folds. ``SnapshotAudit`` stands between the engine and any store and, each
time the store hands out a row (to a use case, to the dispatcher's claim, to the recorder),
folds the row's stream up to the row's version with the core's functions and compares. The
health of an endpoint (``failing_since``) is folded over the whole log, since attempts live in
delivery streams. ``verify_all`` does the same at the end for every stream, rows nobody read
included, and for the attempt log and the published events.

It changes nothing it passes on: a run through the audit is the same run, byte for byte.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from attrs import define, field

from ...core import delivery as dlv
from ...core import endpoint as ep
from ...core import flow
from ...core.delivery import DeliveryStatus
from ...core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryEvent,
    DeliveryScheduled,
    EndpointEvent,
    EventPublished,
)
from ...core.ports import RecordedEvent, Storage, StreamAppend
from ...core.projections import attempt_entry, delivery_row, event_row, next_failing_since, next_failures
from ...core.views import (
    AttemptView,
    DeliveryView,
    DueDelivery,
    EndpointHealth,
    EndpointView,
    EventView,
    QueueStats,
)

__all__ = ["SnapshotAudit"]

_ENDPOINT_EVENTS = EndpointEvent.__args__
_HEALTH_EVENTS = (*_ENDPOINT_EVENTS, AttemptSucceeded, AttemptFailed)
_DELIVERY_EVENTS = DeliveryEvent.__args__


@define
class SnapshotAudit:
    """A ``Storage`` that passes every call to ``store`` and audits every row it hands out."""

    store: Storage
    #: Every disagreement found, as a sentence.
    mismatches: list[str] = field(factory=list)
    #: How many rows were audited while the run went on, by the kind of row.
    audited: dict[str, int] = field(factory=dict)
    # The log up to ``_position`` folded into each endpoint's health, caught up before each audit.
    _position: int = 0
    _health: dict[str, datetime | None] = field(factory=dict)
    _failures: dict[str, int] = field(factory=dict)

    # --- EventStore: passed on ----------------------------------------------------------------

    async def append(self, *appends: StreamAppend) -> int:
        return await self.store.append(*appends)

    async def read(self, stream_id: str) -> Sequence[RecordedEvent]:
        return await self.store.read(stream_id)

    async def read_all(self, after: int = 0, limit: int = 1000) -> Sequence[RecordedEvent]:
        return await self.store.read_all(after, limit)

    # --- EndpointDirectory --------------------------------------------------------------------

    async def endpoint(self, endpoint_id: str) -> EndpointView | None:
        view = await self.store.endpoint(endpoint_id)
        if view is not None:
            await self._audit_endpoint(endpoint_id, view)
        return view

    async def endpoints(self, endpoint_ids: Collection[str]) -> Mapping[str, EndpointView]:
        views = await self.store.endpoints(endpoint_ids)
        for endpoint_id, view in views.items():
            await self._audit_endpoint(endpoint_id, view)
        return views

    async def subscribers(self, account_id: str, event_type: str) -> Sequence[EndpointView]:
        views = await self.store.subscribers(account_id, event_type)
        for view in views:
            await self._audit_endpoint(view.endpoint.endpoint_id, view)
        return views

    async def list_endpoints(
        self, account_id: str, after: str | None = None, limit: int = 100
    ) -> Sequence[EndpointView]:
        views = await self.store.list_endpoints(account_id, after, limit)
        for view in views:
            await self._audit_endpoint(view.endpoint.endpoint_id, view)
        return views

    # --- DeliveryQueue ------------------------------------------------------------------------

    async def claim(self, now: datetime, limit: int, lease_for: timedelta) -> Sequence[DueDelivery]:
        claimed = await self.store.claim(now, limit, lease_for)
        for due in claimed:
            await self._audit_delivery_state(due.delivery.delivery_id, due.delivery, due.version, "claim")
        return claimed

    async def renew(self, leases: Sequence[DueDelivery], until: datetime) -> None:
        await self.store.renew(leases, until)

    async def release(self, returns: Sequence[tuple[DueDelivery, datetime]]) -> None:
        await self.store.release(returns)

    async def next_due(self) -> datetime | None:
        return await self.store.next_due()

    async def queue_stats(self, now: datetime) -> QueueStats:
        return await self.store.queue_stats(now)

    # --- FlowGates: passed on -------------------------------------------------------------------

    async def admit(
        self, asks: Mapping[str, flow.Ask], now: datetime, rules: flow.BreakerRules
    ) -> Mapping[str, flow.Admission]:
        return await self.store.admit(asks, now, rules)

    async def wake(self, endpoint_id: str, now: datetime) -> None:
        await self.store.wake(endpoint_id, now)

    # --- DeliveryLog --------------------------------------------------------------------------

    async def delivery(self, delivery_id: str) -> DeliveryView | None:
        view = await self.store.delivery(delivery_id)
        if view is not None:
            await self._audit_delivery(delivery_id, view)
        return view

    async def attempts(self, delivery_id: str) -> Sequence[AttemptView]:
        return await self.store.attempts(delivery_id)

    async def attempts_of(self, delivery_ids: Collection[str]) -> Mapping[str, Sequence[AttemptView]]:
        return await self.store.attempts_of(delivery_ids)

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
        views = await self.store.deliveries(
            account_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            statuses=statuses,
            since=since,
            before=before,
            limit=limit,
            event_type=event_type,
            created_from=created_from,
            created_until=created_until,
        )
        for view in views:
            await self._audit_delivery(view.delivery.delivery_id, view)
        return views

    async def event(self, account_id: str, event_id: str) -> EventView | None:
        return await self.store.event(account_id, event_id)

    async def endpoint_health(
        self, account_id: str, since: datetime, deliveries: int = 2000
    ) -> Mapping[str, EndpointHealth]:
        return await self.store.endpoint_health(account_id, since, deliveries)

    # --- the audit ----------------------------------------------------------------------------

    async def verify_all(self) -> list[str]:
        """Audit every stream's rows as they are now, against the whole stream; returns
        ``mismatches`` (this run's and earlier ones)."""
        await self._catch_up()
        streams: dict[str, list[RecordedEvent]] = {}
        for recorded in await self.store.read_all(0, self._position):
            streams.setdefault(recorded.stream_id, []).append(recorded)
        for stream_id, stream in streams.items():
            first = stream[0].event
            if isinstance(first, _ENDPOINT_EVENTS):
                endpoint = await self.store.endpoint(stream_id)
                self._compare_endpoint(stream_id, endpoint, stream, len(stream))
            elif isinstance(first, EventPublished):
                published = await self.store.event(first.account_id, first.event_id)
                if published != event_row(first):
                    self._mismatch(f"event {first.event_id}: row {published}, published as {first}")
            elif isinstance(first, DeliveryScheduled):
                delivery = await self.store.delivery(stream_id)
                self._compare_delivery(stream_id, delivery, stream, len(stream))
                logged = list(await self.store.attempts(stream_id))
                entries = [
                    attempt_entry(r.event)
                    for r in stream
                    if isinstance(r.event, AttemptSucceeded | AttemptFailed)
                ]
                if logged != entries:
                    self._mismatch(f"delivery {stream_id}: attempt log {logged}, its stream says {entries}")
        return self.mismatches

    async def _audit_endpoint(self, endpoint_id: str, view: EndpointView) -> None:
        self._count("endpoint")
        await self._catch_up()
        stream = list(await self.store.read(endpoint_id))
        self._compare_endpoint(endpoint_id, view, stream, view.version)

    async def _audit_delivery(self, delivery_id: str, view: DeliveryView) -> None:
        self._count("delivery")
        stream = list(await self.store.read(delivery_id))
        self._compare_delivery(delivery_id, view, stream, view.version)

    async def _audit_delivery_state(
        self, delivery_id: str, state: dlv.Delivery, version: int, kind: str
    ) -> None:
        self._count(kind)
        stream = list(await self.store.read(delivery_id))
        folded = dlv.fold(_events(stream[:version], _DELIVERY_EVENTS))
        if version > len(stream) or state != folded:
            self._mismatch(
                f"{kind} of {delivery_id} at version {version} (stream at {len(stream)}): {state}; "
                f"the fold: {folded}"
            )

    def _compare_endpoint(
        self, endpoint_id: str, view: EndpointView | None, stream: list[RecordedEvent], version: int
    ) -> None:
        folded = ep.fold(_events(stream[:version], _ENDPOINT_EVENTS))
        health = self._health.get(endpoint_id)
        if view is None or version > len(stream) or view.version != version or view.endpoint != folded:
            self._mismatch(f"endpoint {endpoint_id} at version {version}: row {view}; the fold: {folded}")
        elif version == len(stream) and view.failing_since != health:
            # Health is folded over the whole log: comparable only with a row that is current.
            self._mismatch(
                f"endpoint {endpoint_id}: failing since {view.failing_since}, the log says {health}"
            )
        elif version == len(stream) and view.failures != self._failures.get(endpoint_id, 0):
            failures = self._failures.get(endpoint_id, 0)
            self._mismatch(
                f"endpoint {endpoint_id}: {view.failures} failures in a row, the log says {failures}"
            )

    def _compare_delivery(
        self, delivery_id: str, view: DeliveryView | None, stream: list[RecordedEvent], version: int
    ) -> None:
        events = _events(stream[:version], _DELIVERY_EVENTS)
        folded = dlv.fold(events)
        row: DeliveryView | None = None
        for number, event in enumerate(events, start=1):
            row = delivery_row(row, number, event)
        if view is None or version > len(stream) or view.delivery != folded or view != row:
            self._mismatch(
                f"delivery {delivery_id} at version {version}: row {view}; the fold: {folded} ({row})"
            )

    async def _catch_up(self) -> None:
        """Fold the log's new events into every endpoint's health."""
        while page := await self.store.read_all(self._position, 10_000):
            for recorded in page:
                event = recorded.event
                if isinstance(event, _HEALTH_EVENTS):
                    key = event.endpoint_id
                    self._health[key] = next_failing_since(self._health.get(key), event)
                    self._failures[key] = next_failures(self._failures.get(key, 0), event)
            self._position = page[-1].position

    def _count(self, kind: str) -> None:
        self.audited[kind] = self.audited.get(kind, 0) + 1

    def _mismatch(self, sentence: str) -> None:
        self.mismatches.append(sentence)


def _events(stream: Sequence[RecordedEvent], kinds: tuple[type, ...]) -> list[Any]:
    return [recorded.event for recorded in stream if isinstance(recorded.event, kinds)]


# mypy checks here that the audit implements the whole port, as new queries are added to it.
_IMPLEMENTS: type[Storage] = SnapshotAudit
