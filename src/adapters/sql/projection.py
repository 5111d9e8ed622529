"""The read models, projected from recorded events inside the appending transaction.

The same steps as the in-memory reference store (``adapters.memory``), over rows: load the rows
the events touch in one query per table, evolve them in memory in event order, and write them
back in one ``executemany`` per table and kind of change. A batch of a thousand outcomes is a
handful of statements, not a thousand round trips.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from attrs import define
from attrs import evolve as _replace
from sqlalchemy import Connection, Row, Table, bindparam, delete, insert, select, update

from ...core import delivery as dlv
from ...core import endpoint as ep
from ...core.delivery import Delivery, DeliveryStatus
from ...core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryEvent,
    DeliveryScheduled,
    EndpointEnabled,
    EndpointEvent,
    EndpointRegistered,
    EventPublished,
    time_of,
)
from ...core.outcomes import ErrorKind
from ...core.ports import RecordedEvent
from ...core.views import AttemptView, DeliveryView, EndpointView, EventView
from .codec import decode_endpoint, encode_endpoint
from .schema import READ_MODELS, attempts, deliveries, endpoints, published_events

__all__ = [
    "attempt_view",
    "clear_read_models",
    "delivery_view",
    "endpoint_view",
    "event_view",
    "project",
]

_ENDPOINT_EVENTS = EndpointEvent.__args__  # a union's member classes
_DELIVERY_EVENTS = DeliveryEvent.__args__

# --- rows ↔ views -----------------------------------------------------------------------------------


def endpoint_view(row: Row[Any]) -> EndpointView:
    return EndpointView(decode_endpoint(row.state), row.version, row.failing_since)


def delivery_view(row: Row[Any]) -> DeliveryView:
    state = Delivery(
        status=DeliveryStatus(row.status),
        delivery_id=row.delivery_id,
        account_id=row.account_id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        test=row.test,
        attempts=row.attempts,
        due_at=row.due_at,
    )
    return DeliveryView(
        state,
        row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=None if row.last_error is None else ErrorKind(row.last_error),
    )


def event_view(row: Row[Any]) -> EventView:
    return EventView(
        row.event_id, row.account_id, row.event_type, row.body, row.occurred_at, row.published_at, row.test
    )


def attempt_view(row: Row[Any]) -> AttemptView:
    return AttemptView(
        attempt=row.attempt,
        started_at=row.started_at,
        elapsed_ms=row.elapsed_ms,
        succeeded=row.succeeded,
        status_code=row.status_code,
        error=None if row.error is None else ErrorKind(row.error),
        detail=row.detail,
        response_body=row.response_body,
    )


def _delivery_values(view: DeliveryView) -> dict[str, Any]:
    state = view.delivery
    return {
        "account_id": state.account_id,
        "endpoint_id": state.endpoint_id,
        "event_id": state.event_id,
        "event_type": state.event_type,
        "status": state.status.value,
        "test": state.test,
        "attempts": state.attempts,
        "due_at": state.due_at,
        "version": view.version,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
        "last_attempt_at": view.last_attempt_at,
        "last_status_code": view.last_status_code,
        "last_error": None if view.last_error is None else view.last_error.value,
        # Any recorded change ends the lease and puts the delivery where its state says.
        "queue_at": state.due_at if state.status.pending else None,
        "lease": None,
    }


# --- the projection ---------------------------------------------------------------------------------


@define
class _EndpointRow:
    view: EndpointView
    registered_position: int
    new: bool
    changed: bool = False


@define
class _DeliveryRow:
    view: DeliveryView
    new: bool


@define
class _Batch:
    """The rows one batch of events touches, as they evolve."""

    endpoints: dict[str, _EndpointRow]
    deliveries: dict[str, _DeliveryRow]
    published: list[dict[str, Any]]
    attempts: list[dict[str, Any]]


def project(conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
    """Bring every read model up to date with ``recorded`` (just appended, in position order)."""
    batch = _Batch(
        endpoints=_load_endpoints(conn, _endpoint_ids(recorded)),
        deliveries=_load_deliveries(conn, _delivery_ids(recorded)),
        published=[],
        attempts=[],
    )
    for item in recorded:
        event = item.event
        if isinstance(event, _ENDPOINT_EVENTS):
            _project_endpoint(batch, item, event)
        elif isinstance(event, EventPublished):
            batch.published.append(_published_values(event))
        elif isinstance(event, _DELIVERY_EVENTS):
            _project_delivery(batch, item, event)
    _write(conn, batch)


def _endpoint_ids(recorded: Sequence[RecordedEvent]) -> set[str]:
    """The endpoints whose rows change: their own events, and attempts (``failing_since``)."""
    events = [item.event for item in recorded]
    own = {event.endpoint_id for event in events if isinstance(event, _ENDPOINT_EVENTS)}
    tried = {event.endpoint_id for event in events if isinstance(event, AttemptSucceeded | AttemptFailed)}
    return own | tried


def _delivery_ids(recorded: Iterable[RecordedEvent]) -> set[str]:
    return {item.event.delivery_id for item in recorded if isinstance(item.event, _DELIVERY_EVENTS)}


_LOAD_ENDPOINTS = select(endpoints).where(endpoints.c.endpoint_id.in_(bindparam("ids", expanding=True)))
_LOAD_DELIVERIES = select(deliveries).where(deliveries.c.delivery_id.in_(bindparam("ids", expanding=True)))


def _load_endpoints(conn: Connection, ids: Collection[str]) -> dict[str, _EndpointRow]:
    if not ids:
        return {}
    rows = conn.execute(_LOAD_ENDPOINTS, {"ids": list(ids)})
    return {
        row.endpoint_id: _EndpointRow(endpoint_view(row), row.registered_position, new=False) for row in rows
    }


def _load_deliveries(conn: Connection, ids: Collection[str]) -> dict[str, _DeliveryRow]:
    if not ids:
        return {}
    rows = conn.execute(_LOAD_DELIVERIES, {"ids": list(ids)})
    return {row.delivery_id: _DeliveryRow(delivery_view(row), new=False) for row in rows}


def _project_endpoint(batch: _Batch, item: RecordedEvent, event: EndpointEvent) -> None:
    row = batch.endpoints.get(event.endpoint_id)
    if isinstance(event, EndpointRegistered) or row is None:
        fresh = EndpointView(ep.initial_state(), 0)
        row = _EndpointRow(fresh, item.position, new=row is None or row.new)
        batch.endpoints[event.endpoint_id] = row
    # Enabling gives the endpoint a fresh start: its earlier failures no longer count.
    failing_since = None if isinstance(event, EndpointEnabled) else row.view.failing_since
    row.view = _replace(
        row.view,
        endpoint=ep.evolve(row.view.endpoint, event),
        version=item.version,
        failing_since=failing_since,
    )
    row.changed = True


def _published_values(event: EventPublished) -> dict[str, Any]:
    return {
        "account_id": event.account_id,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "body": event.body,
        "occurred_at": event.occurred_at,
        "published_at": event.published_at,
        "test": event.test,
    }


def _project_delivery(batch: _Batch, item: RecordedEvent, event: DeliveryEvent) -> None:
    at = time_of(event)
    row = batch.deliveries.get(event.delivery_id)
    if isinstance(event, DeliveryScheduled) or row is None:
        fresh = DeliveryView(dlv.initial_state(), 0, created_at=at, updated_at=at)
        row = _DeliveryRow(fresh, new=row is None or row.new)
        batch.deliveries[event.delivery_id] = row
    view = _replace(
        row.view, delivery=dlv.evolve(row.view.delivery, event), version=item.version, updated_at=at
    )
    if isinstance(event, AttemptSucceeded | AttemptFailed):
        failed = isinstance(event, AttemptFailed)
        error = event.error if isinstance(event, AttemptFailed) else None
        view = _replace(
            view, last_attempt_at=event.started_at, last_status_code=event.status_code, last_error=error
        )
        batch.attempts.append(
            {
                "position": item.position,
                "delivery_id": event.delivery_id,
                "attempt": event.attempt,
                "started_at": event.started_at,
                "elapsed_ms": event.elapsed_ms,
                "succeeded": not failed,
                "status_code": event.status_code,
                "error": None if error is None else error.value,
                "detail": event.detail if isinstance(event, AttemptFailed) else "",
                "response_body": event.response_body,
            }
        )
        _note_endpoint_health(batch, event)
    row.view = view


def _note_endpoint_health(batch: _Batch, event: AttemptSucceeded | AttemptFailed) -> None:
    """``failing_since``: set by the first failed attempt after a success (or an enabling),
    cleared by a success."""
    row = batch.endpoints.get(event.endpoint_id)
    if row is None:
        return
    failing_since: datetime | None
    if isinstance(event, AttemptSucceeded):
        failing_since = None
    else:
        failing_since = row.view.failing_since or event.started_at
    if failing_since != row.view.failing_since:
        row.view = _replace(row.view, failing_since=failing_since)
        row.changed = True


def _write(conn: Connection, batch: _Batch) -> None:
    _save(
        conn,
        endpoints,
        (
            (endpoint_id, row.new, _endpoint_values(row))
            for endpoint_id, row in batch.endpoints.items()
            if row.changed
        ),
    )
    if batch.published:
        conn.execute(insert(published_events), batch.published)
    _save(
        conn,
        deliveries,
        ((delivery_id, row.new, _delivery_values(row.view)) for delivery_id, row in batch.deliveries.items()),
    )
    if batch.attempts:
        conn.execute(insert(attempts), batch.attempts)


def _endpoint_values(row: _EndpointRow) -> dict[str, Any]:
    return {
        "account_id": row.view.endpoint.account_id,
        "status": row.view.endpoint.status.value,
        "version": row.view.version,
        "failing_since": row.view.failing_since,
        "registered_position": row.registered_position,
        "state": encode_endpoint(row.view.endpoint),
    }


def _save(conn: Connection, table: Table, rows: Iterable[tuple[str, bool, dict[str, Any]]]) -> None:
    """Insert the new rows and update the others, one ``executemany`` each; the key is the id."""
    (key,) = table.primary_key.columns
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for ident, is_new, values in rows:
        if is_new:
            new.append({key.name: ident, **values})
        else:
            changed.append({"b_id": ident, **values})
    if new:
        conn.execute(insert(table), new)
    if changed:
        conn.execute(update(table).where(key == bindparam("b_id", type_=key.type)), changed)


def clear_read_models(conn: Connection) -> None:
    """Empty every read model (before a rebuild replays the log into them)."""
    for table in READ_MODELS:
        conn.execute(delete(table))
