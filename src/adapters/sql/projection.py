"""The read models, projected from recorded events inside the appending transaction.

The same steps as the in-memory reference store (``adapters.memory``), over rows: load the rows
the events touch in one query per table, evolve them in memory in event order with the core's
``evolve`` functions, and write them back in one ``executemany`` per table and kind of change. A
batch of a thousand outcomes is a handful of statements, not a thousand round trips.

This is the hot path of every append, so it runs plain SQL on the DBAPI cursor
(``statements.py``) and keeps each row as a small mutable record while the batch evolves it,
rather than rebuilding frozen views event by event. Rows that cannot exist yet (a stream whose
first event in the batch is its first event ever) are not looked for. Column values that no
event of the batch changes are written back as they were read, without conversion.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from attrs import define, field
from sqlalchemy import Row

from ...core import delivery as dlv
from ...core import endpoint as ep
from ...core.delivery import Delivery, DeliveryStatus
from ...core.endpoint import Endpoint
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
from ..sealing import KeyChanges, key_changes
from .codec import EndpointStates, decode_endpoint, encode_endpoint
from .secret_keys import SqlKeys
from .statements import Statements, chunks
from .times import TimeColumns

__all__ = [
    "Projection",
    "attempt_view",
    "delivery_state",
    "delivery_view",
    "endpoint_view",
    "event_view",
    "select_in",
    "write_rows",
]

_ENDPOINT_EVENTS = EndpointEvent.__args__  # a union's member classes
_DELIVERY_EVENTS = DeliveryEvent.__args__
_STATUSES = {status.value: status for status in DeliveryStatus}

# --- rows ↔ views (the cold paths read through SQLAlchemy Core: named columns, processed types) -----


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


# --- raw rows (the hot paths: positional DBAPI tuples) ----------------------------------------------


def delivery_state(row: Sequence[Any], times: TimeColumns) -> Delivery:
    """A delivery's state from a row that starts with ``delivery_id, status, account_id,
    endpoint_id, event_id, event_type, test, attempts, due_at`` (as the claim and the
    projection's load select them)."""
    due_at = row[8]
    return Delivery(
        _STATUSES[row[1]],
        row[0],
        row[2],
        row[3],
        row[4],
        row[5],
        bool(row[6]),
        row[7],
        None if due_at is None else times.from_db(due_at),
    )


def select_in(cursor: Any, sql: Statements, statement: str, ids: Sequence[str]) -> list[Any]:
    """The rows of ``statement`` (``… IN ({})``) for ``ids``, a chunk of ids per query."""
    rows: list[Any] = []
    for chunk in chunks(ids):
        cursor.execute(sql.in_list(statement, len(chunk)), chunk)
        rows += cursor.fetchall()
    return rows


def write_rows(cursor: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """``executemany``, except for one row: psycopg runs ``executemany`` as a pipeline, which
    costs a round trip more than ``execute``."""
    if len(rows) == 1:
        cursor.execute(statement, rows[0])
    else:
        cursor.executemany(statement, rows)


# --- the projection ---------------------------------------------------------------------------------


@define
class _EndpointRow:
    """An endpoints row while a batch evolves it; ``state`` is decoded from ``text`` on demand."""

    endpoint_id: str
    state: Endpoint | None
    text: str | None
    version: int
    failing_since: datetime | None
    registered_position: int
    stored: bool  # the row exists (UPDATE), or the batch creates it (INSERT)
    changed: bool = False  # the state moved: every column is written
    health_changed: bool = False  # only failing_since moved


@define
class _DeliveryRow:
    """A deliveries row while a batch evolves it. Times are column values, as the driver binds them."""

    state: Delivery
    version: int
    created_at: Any
    updated_at: Any
    last_attempt_at: Any
    last_status_code: int | None
    last_error: str | None
    stored: bool
    replaced: bool = False  # scheduled again over a stored row: every column is written


@define
class _Batch:
    endpoints: dict[str, _EndpointRow]
    deliveries: dict[str, _DeliveryRow]
    published: list[tuple[Any, ...]] = field(factory=list)
    attempts: list[tuple[Any, ...]] = field(factory=list)
    key_changes: list[KeyChanges] = field(factory=list)


@define
class Projection:
    """Brings the read models up to date with events just appended, on the appender's cursor."""

    sql: Statements
    times: TimeColumns
    states: EndpointStates  # sealed states: secrets stay tokens here
    keys: SqlKeys

    def project(self, cursor: Any, recorded: Sequence[RecordedEvent]) -> None:
        """Project ``recorded`` (just appended, in position order) inside the cursor's transaction."""
        endpoint_ids, delivery_ids = _rows_to_load(recorded)
        batch = _Batch(
            self._load_endpoints(cursor, endpoint_ids), self._load_deliveries(cursor, delivery_ids)
        )
        to_db = self.times.to_db
        for item in recorded:
            event = item.event
            if isinstance(event, _DELIVERY_EVENTS):
                self._project_delivery(batch, item, event)
            elif isinstance(event, EventPublished):
                batch.published.append(
                    (
                        event.account_id,
                        event.event_id,
                        event.event_type,
                        event.body,
                        to_db(event.occurred_at),
                        to_db(event.published_at),
                        event.test,
                    )
                )
            elif isinstance(event, _ENDPOINT_EVENTS):
                self._project_endpoint(batch, item, event)
        self._write(cursor, batch)

    # --- loading

    def _load_endpoints(self, cursor: Any, ids: list[str]) -> dict[str, _EndpointRow]:
        if not ids:
            return {}
        from_db = self.times.from_db
        return {
            row[0]: _EndpointRow(
                row[0], None, row[4], row[1], None if row[2] is None else from_db(row[2]), row[3], stored=True
            )
            for row in select_in(cursor, self.sql, self.sql.load_endpoints, ids)
        }

    def _load_deliveries(self, cursor: Any, ids: list[str]) -> dict[str, _DeliveryRow]:
        if not ids:
            return {}
        times = self.times
        return {
            row[0]: _DeliveryRow(
                delivery_state(row, times), row[9], None, None, row[10], row[11], row[12], stored=True
            )
            for row in select_in(cursor, self.sql, self.sql.load_deliveries, ids)
        }

    # --- evolving

    def _project_endpoint(self, batch: _Batch, item: RecordedEvent, event: EndpointEvent) -> None:
        row = batch.endpoints.get(event.endpoint_id)
        if isinstance(event, EndpointRegistered) or row is None:
            stored = row is not None and row.stored
            row = _EndpointRow(event.endpoint_id, ep.initial_state(), None, 0, None, item.position, stored)
            batch.endpoints[event.endpoint_id] = row
        state = row.state
        if state is None:
            assert row.text is not None
            state = self.states.decode(row.text)
        changes = key_changes(state, event)
        if changes:
            batch.key_changes.append(changes)
        row.state = ep.evolve(state, event)
        row.version = item.version
        # Enabling gives the endpoint a fresh start: its earlier failures no longer count.
        if isinstance(event, EndpointEnabled):
            row.failing_since = None
        row.changed = True

    def _project_delivery(self, batch: _Batch, item: RecordedEvent, event: DeliveryEvent) -> None:
        at = self.times.to_db(time_of(event))
        row = batch.deliveries.get(event.delivery_id)
        if isinstance(event, DeliveryScheduled) or row is None:
            stored = row is not None and row.stored
            row = _DeliveryRow(dlv.initial_state(), 0, at, at, None, None, None, stored, replaced=stored)
            batch.deliveries[event.delivery_id] = row
        row.state = dlv.evolve(row.state, event)
        row.version = item.version
        row.updated_at = at
        if isinstance(event, AttemptSucceeded | AttemptFailed):
            failed = isinstance(event, AttemptFailed)
            error = event.error.value if isinstance(event, AttemptFailed) and event.error else None
            row.last_attempt_at = at  # an attempt's time is its start
            row.last_status_code = event.status_code
            row.last_error = error
            batch.attempts.append(
                (
                    item.position,
                    event.delivery_id,
                    event.attempt,
                    at,
                    event.elapsed_ms,
                    not failed,
                    event.status_code,
                    error,
                    event.detail if isinstance(event, AttemptFailed) else "",
                    event.response_body,
                )
            )
            _note_endpoint_health(batch, event)

    # --- writing

    def _write(self, cursor: Any, batch: _Batch) -> None:
        sql = self.sql
        if batch.endpoints:
            self._write_endpoints(cursor, batch.endpoints.values())
        if batch.published:
            write_rows(cursor, sql.insert_published, batch.published)
        if batch.deliveries:
            self._write_deliveries(cursor, batch.deliveries)
        if batch.attempts:
            write_rows(cursor, sql.insert_attempt, batch.attempts)
        if batch.key_changes:
            self.keys.apply(cursor, batch.key_changes)

    def _write_endpoints(self, cursor: Any, rows: Iterable[_EndpointRow]) -> None:
        to_db = self.times.to_db
        new: list[tuple[Any, ...]] = []
        changed: list[tuple[Any, ...]] = []
        healed: list[tuple[Any, ...]] = []
        for row in rows:
            if not (row.changed or row.health_changed):
                continue
            failing_since = None if row.failing_since is None else to_db(row.failing_since)
            if row.changed:
                state = row.state
                assert state is not None
                values = (
                    state.account_id,
                    state.status.value,
                    row.version,
                    failing_since,
                    row.registered_position,
                    encode_endpoint(state),
                )
                if row.stored:
                    changed.append((*values, row.endpoint_id))
                else:
                    new.append((row.endpoint_id, *values))
            elif row.health_changed:
                healed.append((failing_since, row.endpoint_id))
        if new:
            write_rows(cursor, self.sql.insert_endpoint, new)
        if changed:
            write_rows(cursor, self.sql.update_endpoint, changed)
        if healed:
            write_rows(cursor, self.sql.update_failing_since, healed)

    def _write_deliveries(self, cursor: Any, rows: dict[str, _DeliveryRow]) -> None:
        to_db = self.times.to_db
        new: list[tuple[Any, ...]] = []
        updated: list[tuple[Any, ...]] = []
        replaced: list[tuple[Any, ...]] = []
        for delivery_id, row in rows.items():
            state = row.state
            due_at = None if state.due_at is None else to_db(state.due_at)
            queue_at = due_at if state.status.pending else None
            if row.stored and not row.replaced:
                updated.append(
                    (
                        state.status.value,
                        state.attempts,
                        due_at,
                        row.version,
                        row.updated_at,
                        row.last_attempt_at,
                        row.last_status_code,
                        row.last_error,
                        queue_at,
                        delivery_id,
                    )
                )
                continue
            values = (
                state.account_id,
                state.endpoint_id,
                state.event_id,
                state.event_type,
                state.status.value,
                state.test,
                state.attempts,
                due_at,
                row.version,
                row.created_at,
                row.updated_at,
                row.last_attempt_at,
                row.last_status_code,
                row.last_error,
                queue_at,
            )
            if row.stored:
                replaced.append((*values, delivery_id))
            else:
                new.append((delivery_id, *values, None))
        if new:
            write_rows(cursor, self.sql.insert_delivery, new)
        if updated:
            write_rows(cursor, self.sql.update_delivery, updated)
        if replaced:
            write_rows(cursor, self.sql.replace_delivery, replaced)


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
        failing_since = row.failing_since or event.started_at
    if failing_since != row.failing_since:
        row.failing_since = failing_since
        row.health_changed = True


def _rows_to_load(recorded: Sequence[RecordedEvent]) -> tuple[list[str], list[str]]:
    """The endpoint and delivery rows the batch changes that may exist already.

    Endpoints change by their own events, and by attempts (``failing_since``). A row keyed by a
    stream whose first event in the batch is that stream's version 1 cannot exist yet, so it is
    not looked for: publishing loads nothing, and an attempt on an endpoint that the batch itself
    registers later finds no row, as in the memory store.
    """
    endpoints: dict[str, bool] = {}  # row id → may exist before the batch
    deliveries: dict[str, bool] = {}
    tried: list[str] = []
    for item in recorded:
        event = item.event
        if isinstance(event, _DELIVERY_EVENTS):
            if event.delivery_id not in deliveries:
                deliveries[event.delivery_id] = item.version != 1 or item.stream_id != event.delivery_id
            if isinstance(event, AttemptSucceeded | AttemptFailed):
                tried.append(event.endpoint_id)
        elif isinstance(event, _ENDPOINT_EVENTS) and event.endpoint_id not in endpoints:
            endpoints[event.endpoint_id] = item.version != 1 or item.stream_id != event.endpoint_id
    for endpoint_id in tried:
        endpoints.setdefault(endpoint_id, True)
    return [k for k, load in endpoints.items() if load], [k for k, load in deliveries.items() if load]
