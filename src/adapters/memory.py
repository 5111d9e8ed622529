"""The in-memory store: every storage port in plain dicts, for tests, the simulator and demos.

It is the reference for the SQL store: both pass the same contract suite. Appends are atomic
because nothing in them awaits; read models are updated in the same step as the events.
Secrets are held as the SQL store holds them, as tokens whose keys are destroyed when the
secrets stop signing (``sealing.py``), only without encryption: nothing here is at rest.
"""

from __future__ import annotations

import bisect
import heapq
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from attrs import define, field
from attrs import evolve as _replace

from ..core import endpoint as ep
from ..core import flow
from ..core.delivery import DeliveryStatus
from ..core.errors import ConcurrencyConflict
from ..core.events import (
    AttemptAbandoned,
    AttemptFailed,
    AttemptSucceeded,
    DeliveryEvent,
    DeliveryScheduled,
    DomainEvent,
    EndpointEvent,
    EndpointRegistered,
    EventPublished,
)
from ..core.ordering import line_after, queue_entry
from ..core.ports import RecordedEvent, StreamAppend
from ..core.projections import (
    attempt_entry,
    delivery_row,
    endpoint_row,
    event_row,
    next_failing_since,
    next_failures,
    queue_at,
    tells_health,
)
from ..core.views import (
    AttemptView,
    DeliveryView,
    DueDelivery,
    EndpointHealth,
    EndpointView,
    EventView,
    QueueStats,
)
from .memory_history import MemoryHistory
from .sealing import MemoryKeys, key_changes, open_endpoint, open_recorded, seal_event, tokens_in

__all__ = ["MemoryStore"]

_ENDPOINT_EVENTS = EndpointEvent.__args__  # a union's member classes
_DELIVERY_EVENTS = DeliveryEvent.__args__


@define
class _DeliveryRow:
    view: DeliveryView
    due_at: datetime | None = None
    lease: str | None = None
    #: The attempt number of the latest lease; None once an event of the delivery is recorded.
    lease_attempt: int | None = None
    queue_key: int = 0
    line: int | None = None  # its place in its endpoint's line (ADR 0016)


@define
class MemoryStore(MemoryHistory):
    """Implements ``attribution_webhooks.core.ports.Storage`` in memory."""

    _streams: dict[str, list[RecordedEvent]] = field(factory=dict, init=False)
    _log: list[RecordedEvent] = field(factory=list, init=False)
    _endpoints: dict[str, EndpointView] = field(factory=dict, init=False)
    _account_endpoints: dict[str, list[str]] = field(factory=dict, init=False)
    _events: dict[tuple[str, str], EventView] = field(factory=dict, init=False)
    _deliveries: dict[str, _DeliveryRow] = field(factory=dict, init=False)
    _account_deliveries: dict[str, list[str]] = field(factory=dict, init=False)
    _attempts: dict[str, list[AttemptView]] = field(factory=dict, init=False)
    # (due_at, delivery_id, key): ties go by delivery id, as in the SQL store's index.
    _queue: list[tuple[datetime, str, int]] = field(factory=list, init=False)
    _counter: int = field(default=0, init=False)
    _position: int = field(default=0, init=False)  # the last position given: never reused
    # Retention's tombstones: (account, event id) → (published at, purged at).
    _tombstones: dict[tuple[str, str], tuple[datetime, datetime]] = field(factory=dict, init=False)
    # Ordered endpoints' lines: endpoint id → {delivery id: place}. Places are log positions,
    # which only grow, so a line's first entry is its head (``ordering.head_of``).
    _lines: dict[str, OrderedDict[str, int]] = field(factory=dict, init=False)
    _keys: MemoryKeys = field(factory=MemoryKeys, init=False)
    _gates: dict[str, flow.Gate] = field(factory=dict, init=False)

    # --- EventStore -------------------------------------------------------------------------

    async def append(self, *appends: StreamAppend) -> int:
        versions: dict[str, int] = {}
        conflicts: list[str] = []
        for append in appends:
            current = versions.get(append.stream_id, len(self._streams.get(append.stream_id, ())))
            if current != append.expected_version:
                conflicts.append(append.stream_id)
            versions[append.stream_id] = current + len(append.events)
        if conflicts:
            raise ConcurrencyConflict(tuple(conflicts))
        for append in appends:
            stream = self._streams.setdefault(append.stream_id, [])
            for event in append.events:
                sealed = seal_event(event, self._keys.new_token)
                self._position += 1
                recorded = RecordedEvent(self._position, append.stream_id, len(stream) + 1, sealed)
                stream.append(recorded)
                self._log.append(recorded)
                self._project(recorded)
        return self._position

    async def read(self, stream_id: str) -> Sequence[RecordedEvent]:
        return self._opened(self._streams.get(stream_id, ()))

    async def read_all(self, after: int = 0, limit: int = 1000) -> Sequence[RecordedEvent]:
        # Positions have gaps once retention has removed streams: find ``after`` by bisection.
        start = bisect.bisect_right(self._log, after, key=lambda recorded: recorded.position)
        return self._opened(self._log[start : start + limit])

    def _opened(self, recorded: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        opened = self._keys.open(tokens_in(item.event for item in recorded))
        return [open_recorded(item, opened) for item in recorded] if opened else list(recorded)

    def _view(self, view: EndpointView) -> EndpointView:
        state = view.endpoint
        opened = self._keys.open(tokens_in((state,)))
        return _replace(view, endpoint=open_endpoint(state, opened)) if opened else view

    # --- projections ------------------------------------------------------------------------

    def _project(self, recorded: RecordedEvent) -> None:
        # The rows are the core's pure projections (core.projections); this store only indexes them.
        event = recorded.event
        if isinstance(event, _DELIVERY_EVENTS):
            self._project_delivery(recorded.position, recorded.version, event)
        elif isinstance(event, EventPublished):
            self._events[(event.account_id, event.event_id)] = event_row(event)
        elif isinstance(event, _ENDPOINT_EVENTS):
            if isinstance(event, EndpointRegistered):
                self._account_endpoints.setdefault(event.account_id, []).append(event.endpoint_id)
            row = None if isinstance(event, EndpointRegistered) else self._endpoints[event.endpoint_id]
            # Secret keys follow the secrets the endpoint's state holds (ADR 0010).
            self._keys.apply(key_changes(ep.initial_state() if row is None else row.endpoint, event))
            self._endpoints[event.endpoint_id] = endpoint_row(row, recorded.version, event)

    def _project_delivery(self, position: int, version: int, event: DeliveryEvent) -> None:
        if isinstance(event, DeliveryScheduled):
            self._account_deliveries.setdefault(event.account_id, []).append(event.delivery_id)
            before = self._deliveries.get(event.delivery_id)
            row = self._deliveries[event.delivery_id] = _DeliveryRow(delivery_row(None, version, event))
            row.line = None if before is None else before.line
        else:
            row = self._deliveries[event.delivery_id]
            row.view = delivery_row(row.view, version, event)
        if isinstance(event, AttemptSucceeded | AttemptFailed):
            self._attempts.setdefault(event.delivery_id, []).append(attempt_entry(event))
            endpoint = self._endpoints.get(event.endpoint_id)
            if endpoint is not None:
                failing_since = next_failing_since(endpoint.failing_since, event)
                failures = next_failures(endpoint.failures, event)
                if failing_since != endpoint.failing_since or failures != endpoint.failures:
                    self._endpoints[event.endpoint_id] = _replace(
                        endpoint, failing_since=failing_since, failures=failures
                    )
        elif isinstance(event, AttemptAbandoned):
            self._attempts.setdefault(event.delivery_id, []).append(attempt_entry(event))
        row.lease = None  # any recorded change ends the lease
        row.lease_attempt = None
        line = row.line
        row.line = line_after(line, position, event, row.view.delivery)
        if line is None and row.line is None:
            self._schedule(event.delivery_id, row, queue_at(row.view.delivery))
        else:
            self._move_in_line(event.delivery_id, row, line)

    def _move_in_line(self, delivery_id: str, row: _DeliveryRow, line: int | None) -> None:
        """Queue a delivery of an ordered endpoint that was at ``line`` (or none) and is now at
        ``row.line``; when the line's head changes, put the new head in the queue."""
        endpoint_id = row.view.delivery.endpoint_id
        places = self._lines.setdefault(endpoint_id, OrderedDict())
        head_before = next(iter(places), None)
        if line is not None and row.line != line:
            del places[delivery_id]
        if row.line is not None and row.line != line:
            places[delivery_id] = row.line
        head_id = next(iter(places), None)
        head = None if head_id is None else places[head_id]
        self._schedule(delivery_id, row, queue_entry(row.view.delivery, row.line, head))
        if head_id is not None and head_id not in (head_before, delivery_id):
            promoted = self._deliveries[head_id]
            if promoted.due_at is None and promoted.lease is None:  # parked until now
                self._schedule(head_id, promoted, queue_entry(promoted.view.delivery, head, head))
        if not places:
            del self._lines[endpoint_id]

    def _schedule(self, delivery_id: str, row: _DeliveryRow, due_at: datetime | None) -> None:
        self._counter += 1
        row.due_at = due_at
        row.queue_key = self._counter
        if due_at is not None:
            heapq.heappush(self._queue, (due_at, delivery_id, self._counter))

    # --- EndpointDirectory ------------------------------------------------------------------

    async def endpoint(self, endpoint_id: str) -> EndpointView | None:
        view = self._endpoints.get(endpoint_id)
        return None if view is None else self._view(view)

    async def endpoints(self, endpoint_ids: Collection[str]) -> Mapping[str, EndpointView]:
        return {i: self._view(self._endpoints[i]) for i in endpoint_ids if i in self._endpoints}

    async def subscribers(self, account_id: str, event_type: str) -> Sequence[EndpointView]:
        views = (self._endpoints[i] for i in self._account_endpoints.get(account_id, ()))
        return [
            self._view(view)
            for view in views
            if view.endpoint.status in (ep.EndpointStatus.ENABLED, ep.EndpointStatus.DISABLED)
            and event_type in view.endpoint.event_types
        ]

    async def list_endpoints(
        self, account_id: str, after: str | None = None, limit: int = 100
    ) -> Sequence[EndpointView]:
        ids = sorted(i for i in self._account_endpoints.get(account_id, ()) if after is None or i > after)
        live = (self._endpoints[i] for i in ids)
        return [self._view(v) for v in live if v.endpoint.status is not ep.EndpointStatus.DELETED][:limit]

    # --- DeliveryQueue ----------------------------------------------------------------------

    async def claim(self, now: datetime, limit: int, lease_for: timedelta) -> Sequence[DueDelivery]:
        self._keys.purge(now)  # as the SQL store's claims do: rotated-out secrets end on time
        claimed: list[DueDelivery] = []
        while self._queue and len(claimed) < limit:
            due_at, delivery_id, key = self._queue[0]
            if due_at > now:
                break
            heapq.heappop(self._queue)
            row = self._deliveries.get(delivery_id)
            if row is None or row.queue_key != key:
                continue  # superseded entry
            leased_until = now + lease_for
            self._schedule(delivery_id, row, leased_until)
            row.lease = f"lease-{row.queue_key}"
            state = row.view.delivery
            row.lease_attempt = max(row.lease_attempt or 0, state.attempts) + 1
            body = self._events[(state.account_id, state.event_id)].body
            claimed.append(
                DueDelivery(state, row.view.version, row.lease, leased_until, body, row.lease_attempt)
            )
        return claimed

    async def renew(self, leases: Sequence[DueDelivery], until: datetime) -> None:
        for due in leases:
            row = self._deliveries.get(due.delivery.delivery_id)
            if row is not None and row.lease == due.lease:
                lease = row.lease
                self._schedule(due.delivery.delivery_id, row, until)
                row.lease = lease  # the queue entry is new, the lease the same

    async def release(self, returns: Sequence[tuple[DueDelivery, datetime]]) -> None:
        for due, due_at in returns:
            row = self._deliveries.get(due.delivery.delivery_id)
            if row is not None and row.lease == due.lease:
                row.lease = None
                row.lease_attempt = due.attempt_before
                self._schedule(due.delivery.delivery_id, row, due_at)

    # --- FlowGates ---------------------------------------------------------------------------

    async def admit(
        self, asks: Mapping[str, flow.Ask], now: datetime, rules: flow.BreakerRules
    ) -> Mapping[str, flow.Admission]:
        admissions: dict[str, flow.Admission] = {}
        for endpoint_id, ask in asks.items():
            gate, admissions[endpoint_id] = flow.admit(
                self._gates.get(endpoint_id, flow.Gate()), ask, now, rules
            )
            self._gates[endpoint_id] = gate
        return admissions

    async def wake(self, endpoint_id: str, now: datetime) -> None:
        for delivery_id, row in self._deliveries.items():
            state = row.view.delivery
            if state.endpoint_id != endpoint_id or row.lease is not None or row.due_at is None:
                continue
            if state.due_at is not None and row.due_at > (due := max(state.due_at, now)):
                self._schedule(delivery_id, row, due)

    async def next_due(self) -> datetime | None:
        while self._queue:
            due_at, delivery_id, key = self._queue[0]
            row = self._deliveries.get(delivery_id)
            if row is not None and row.queue_key == key:
                return due_at
            heapq.heappop(self._queue)
        return None

    async def queue_stats(self, now: datetime) -> QueueStats:
        queued = [row.due_at for row in self._deliveries.values() if row.due_at is not None]
        # Deliveries parked behind their line's head wait for an attempt too (ADR 0016).
        parked = sum(
            row.due_at is None and row.view.delivery.status.pending
            for line in self._lines.values()
            for row in (self._deliveries[i] for i in line)
        )
        due = [at for at in queued if at <= now]
        held = sum(row.view.delivery.status is DeliveryStatus.HELD for row in self._deliveries.values())
        disabled = ep.EndpointStatus.DISABLED
        return QueueStats(
            pending=len(queued) + parked,
            due=len(due),
            oldest_due_at=min(due, default=None),
            held=held,
            disabled_endpoints=sum(v.endpoint.status is disabled for v in self._endpoints.values()),
        )

    # --- DeliveryLog ------------------------------------------------------------------------

    async def delivery(self, delivery_id: str) -> DeliveryView | None:
        row = self._deliveries.get(delivery_id)
        return row.view if row is not None else None

    async def attempts(self, delivery_id: str) -> Sequence[AttemptView]:
        return list(self._attempts.get(delivery_id, ()))

    async def attempts_of(self, delivery_ids: Collection[str]) -> Mapping[str, Sequence[AttemptView]]:
        return {i: list(self._attempts[i]) for i in delivery_ids if i in self._attempts}

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
        found: list[DeliveryView] = []
        for delivery_id in sorted(self._account_deliveries.get(account_id, ()), reverse=True):
            if before is not None and delivery_id >= before:
                continue
            view = self._deliveries[delivery_id].view
            state = view.delivery
            if (
                (endpoint_id is None or state.endpoint_id == endpoint_id)
                and (event_id is None or state.event_id == event_id)
                and (statuses is None or state.status in statuses)
                and (since is None or view.updated_at >= since)
                and (event_type is None or state.event_type == event_type)
                and (created_from is None or view.created_at >= created_from)
                and (created_until is None or view.created_at < created_until)
            ):
                found.append(view)
                if len(found) >= limit:
                    break
        return found

    async def event(self, account_id: str, event_id: str) -> EventView | None:
        return self._events.get((account_id, event_id))

    async def endpoint_health(
        self, account_id: str, since: datetime, deliveries: int = 2000
    ) -> Mapping[str, EndpointHealth]:
        health: dict[str, EndpointHealth] = {}
        taken: dict[str, int] = {}
        for delivery_id in sorted(self._account_deliveries.get(account_id, ()), reverse=True):
            endpoint_id = self._deliveries[delivery_id].view.delivery.endpoint_id
            taken[endpoint_id] = taken.get(endpoint_id, 0) + 1
            if taken[endpoint_id] > deliveries:
                continue
            for a in self._attempts.get(delivery_id, ()):
                if a.started_at < since or not tells_health(a):
                    continue
                h = health.get(endpoint_id, EndpointHealth(0, 0))
                latest = h.last_attempt_at is None or a.started_at >= h.last_attempt_at
                health[endpoint_id] = EndpointHealth(
                    h.attempts + 1,
                    h.succeeded + a.succeeded,
                    a.started_at if latest else h.last_attempt_at,
                    a.succeeded if latest else h.last_succeeded,
                )
        return health

    # --- for tests --------------------------------------------------------------------------

    def all_events(self) -> list[DomainEvent]:
        """Every event in global order."""
        return [recorded.event for recorded in self._opened(self._log)]
