"""The read models, projected from recorded events inside the appending transaction.

The rows are the core's pure projections (``core.projections``: ``endpoint_row``,
``next_failing_since``, ``delivery_row``, ``attempt_entry``, ``queue_at``), as in the in-memory
reference store; this module only loads, holds and writes them. It loads the rows the events
touch in one query per table, evolves them in memory in event order, and writes them back in one
``executemany`` per table and kind of change. A batch of a thousand outcomes is a handful of
statements, not a thousand round trips.

This is the hot path of every append, so it runs plain SQL on the DBAPI cursor
(``statements.py``) and converts between column values and the core's values only at loading and
writing. Rows that cannot exist yet (a stream whose first event in the batch is its first event
ever) are not looked for. An endpoint's state is decoded only when one of its own events comes:
an attempt changes only its ``failing_since``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from attrs import define, field

from ...core import endpoint as ep
from ...core.endpoint import Endpoint
from ...core.events import (
    AttemptAbandoned,
    AttemptFailed,
    AttemptSucceeded,
    DeliveryEvent,
    DeliveryScheduled,
    EndpointEvent,
    EndpointRegistered,
    EventPublished,
)
from ...core.ordering import head_of, line_after, queue_entry
from ...core.outcomes import ErrorKind
from ...core.ports import RecordedEvent
from ...core.projections import (
    attempt_entry,
    delivery_row,
    endpoint_row,
    event_row,
    next_failing_since,
    next_failures,
)
from ...core.projections import queue_at as projected_queue_at
from ...core.views import DeliveryView, EndpointView
from ..sealing import KeyChanges, key_changes
from .codec import EndpointStates, encode_endpoint
from .rows import delivery_state, select_in, write_rows
from .secret_keys import SqlKeys
from .statements import Statements
from .times import TimeColumns

__all__ = ["Projection"]

_ENDPOINT_EVENTS = EndpointEvent.__args__  # a union's member classes
_DELIVERY_EVENTS = DeliveryEvent.__args__
# Class tuples, not unions: ``isinstance`` with ``A | B`` builds the union at each call.
_LOGGED = (AttemptSucceeded, AttemptFailed, AttemptAbandoned)
_ATTEMPTED = (AttemptSucceeded, AttemptFailed)

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
    failures: int = 0
    changed: bool = False  # the state moved: every column is written
    health_changed: bool = False  # only failing_since and failures moved


@define
class _DeliveryRow:
    """A deliveries row while a batch evolves it."""

    view: DeliveryView
    stored: bool
    replaced: bool = False  # scheduled again over a stored row: every column is written
    line: int | None = None  # its place in its endpoint's line (ADR 0016)
    was_in_line: bool = False  # in a line at any point of the batch: its line's head is found


@define
class _Batch:
    endpoints: dict[str, _EndpointRow]
    deliveries: dict[str, _DeliveryRow]
    published: list[tuple[Any, ...]] = field(factory=list)
    attempts: list[tuple[Any, ...]] = field(factory=list)
    key_changes: list[KeyChanges] = field(factory=list)
    promoted: list[tuple[Any, ...]] = field(factory=list)  # parked rows that became heads


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
                published = event_row(event)
                batch.published.append(
                    (
                        published.account_id,
                        published.event_id,
                        published.event_type,
                        published.body,
                        to_db(published.occurred_at),
                        to_db(published.published_at),
                        published.test,
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
                row[0],
                None,
                row[4],
                row[1],
                None if row[2] is None else from_db(row[2]),
                row[3],
                stored=True,
                failures=row[5],
            )
            for row in select_in(cursor, self.sql, self.sql.load_endpoints, ids)
        }

    def _load_deliveries(self, cursor: Any, ids: list[str]) -> dict[str, _DeliveryRow]:
        if not ids:
            return {}
        times = self.times
        from_db = times.from_db
        return {
            row[0]: _DeliveryRow(
                DeliveryView(
                    delivery_state(row, times),
                    row[9],
                    from_db(row[13]),
                    from_db(row[14]),
                    None if row[10] is None else from_db(row[10]),
                    row[11],
                    None if row[12] is None else ErrorKind(row[12]),
                ),
                stored=True,
                line=row[15],
                was_in_line=row[15] is not None,
            )
            for row in select_in(cursor, self.sql, self.sql.load_deliveries, ids)
        }

    # --- evolving

    def _project_endpoint(self, batch: _Batch, item: RecordedEvent, event: EndpointEvent) -> None:
        row = batch.endpoints.get(event.endpoint_id)
        previous: EndpointView | None = None
        if isinstance(event, EndpointRegistered) or row is None:
            stored = row is not None and row.stored
            row = _EndpointRow(event.endpoint_id, None, None, 0, None, item.position, stored)
            batch.endpoints[event.endpoint_id] = row
        else:
            state = row.state
            if state is None:
                assert row.text is not None
                state = self.states.decode(row.text)
            previous = EndpointView(state, row.version, row.failing_since, row.failures)
        # Secret keys follow the secrets the endpoint's state holds (ADR 0010).
        changes = key_changes(ep.initial_state() if previous is None else previous.endpoint, event)
        if changes:
            batch.key_changes.append(changes)
        view = endpoint_row(previous, item.version, event)
        row.state, row.version, row.failing_since = view.endpoint, view.version, view.failing_since
        row.failures = view.failures
        row.changed = True

    def _project_delivery(self, batch: _Batch, item: RecordedEvent, event: DeliveryEvent) -> None:
        row = batch.deliveries.get(event.delivery_id)
        if isinstance(event, DeliveryScheduled) or row is None:
            stored = row is not None and row.stored
            before = row
            row = _DeliveryRow(delivery_row(None, item.version, event), stored, replaced=stored)
            row.was_in_line = before is not None and before.was_in_line
            batch.deliveries[event.delivery_id] = row
        else:
            row.view = delivery_row(row.view, item.version, event)
        row.line = line_after(row.line, item.position, event, row.view.delivery)
        row.was_in_line = row.was_in_line or row.line is not None
        if isinstance(event, _LOGGED):
            entry = attempt_entry(event)
            batch.attempts.append(
                (
                    item.position,
                    event.delivery_id,
                    entry.attempt,
                    self.times.to_db(entry.started_at),
                    entry.elapsed_ms,
                    entry.succeeded,
                    entry.status_code,
                    None if entry.error is None else entry.error.value,
                    entry.detail,
                    entry.response_body,
                )
            )
            if isinstance(event, _ATTEMPTED):
                endpoint = batch.endpoints.get(event.endpoint_id)
                if endpoint is not None:
                    failing_since = next_failing_since(endpoint.failing_since, event)
                    failures = next_failures(endpoint.failures, event)
                    if failing_since != endpoint.failing_since or failures != endpoint.failures:
                        endpoint.failing_since, endpoint.failures = failing_since, failures
                        endpoint.health_changed = True

    # --- writing

    def _write(self, cursor: Any, batch: _Batch) -> None:
        sql = self.sql
        if batch.endpoints:
            self._write_endpoints(cursor, batch.endpoints.values())
        if batch.published:
            write_rows(cursor, sql.insert_published, batch.published)
        if batch.deliveries:
            heads = self._line_heads(cursor, batch)
            self._write_deliveries(cursor, batch.deliveries, heads)
        if batch.promoted:
            write_rows(cursor, sql.promote, batch.promoted)
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
                    row.failures,
                )
                if row.stored:
                    changed.append((*values, row.endpoint_id))
                else:
                    new.append((row.endpoint_id, *values))
            elif row.health_changed:
                healed.append((failing_since, row.failures, row.endpoint_id))
        if new:
            write_rows(cursor, self.sql.insert_endpoint, new)
        if changed:
            write_rows(cursor, self.sql.update_endpoint, changed)
        if healed:
            write_rows(cursor, self.sql.update_failing_since, healed)

    def _line_heads(self, cursor: Any, batch: _Batch) -> dict[str, int | None]:
        """The head of every line the batch touches, by endpoint id, after the batch. A head
        that the batch did not touch and that was parked is promoted (``batch.promoted``).

        Appends hold the append lock, so no other projection moves a line meanwhile; a claim
        may lease a head meanwhile, but a parked row is never leased."""
        lines: dict[str, list[tuple[int, str]]] = {}
        stored: dict[str, int] = {}
        for delivery_id, row in batch.deliveries.items():
            if not row.was_in_line:
                continue
            endpoint_id = row.view.delivery.endpoint_id
            places = lines.setdefault(endpoint_id, [])
            if row.line is not None:
                places.append((row.line, delivery_id))
            stored[endpoint_id] = stored.get(endpoint_id, 0) + row.stored
        heads: dict[str, int | None] = {}
        times = self.times
        for endpoint_id, places in lines.items():
            # The line's first row outside the batch: the batch's own stored rows of the line
            # may come first, with their places before the batch.
            limit = stored[endpoint_id] + 1
            cursor.execute(self.sql.line_heads, (endpoint_id, limit))
            outside = next((r for r in cursor.fetchall() if r[0] not in batch.deliveries), None)
            if outside is not None:
                places.append((outside[10], outside[0]))
            head = head_of(place for place, _ in places)
            heads[endpoint_id] = head
            if outside is not None and head == outside[10] and outside[11] is None:
                due = queue_entry(delivery_state(outside, times), head, head)
                if due is not None:
                    batch.promoted.append((times.to_db(due), outside[0]))
        return heads

    def _write_deliveries(
        self, cursor: Any, rows: dict[str, _DeliveryRow], heads: dict[str, int | None]
    ) -> None:
        to_db = self.times.to_db
        new: list[tuple[Any, ...]] = []
        updated: list[tuple[Any, ...]] = []
        replaced: list[tuple[Any, ...]] = []
        for delivery_id, row in rows.items():
            view = row.view
            state = view.delivery
            due_at = None if state.due_at is None else to_db(state.due_at)
            if row.line is None:
                queued = projected_queue_at(state)
            else:
                queued = queue_entry(state, row.line, heads[state.endpoint_id])
            queue_at = None if queued is None else to_db(queued)
            updated_at = to_db(view.updated_at)
            last_attempt_at = None if view.last_attempt_at is None else to_db(view.last_attempt_at)
            last_error = None if view.last_error is None else view.last_error.value
            if row.stored and not row.replaced:
                updated.append(
                    (
                        state.status.value,
                        state.attempts,
                        due_at,
                        view.version,
                        updated_at,
                        last_attempt_at,
                        view.last_status_code,
                        last_error,
                        queue_at,
                        row.line,
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
                view.version,
                to_db(view.created_at),
                updated_at,
                last_attempt_at,
                view.last_status_code,
                last_error,
                queue_at,
            )
            if row.stored:
                replaced.append((*values, row.line, delivery_id))
            else:
                new.append((delivery_id, *values, None, row.line))
        if new:
            write_rows(cursor, self.sql.insert_delivery, new)
        if updated:
            write_rows(cursor, self.sql.update_delivery, updated)
        if replaced:
            write_rows(cursor, self.sql.replace_delivery, replaced)


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
            if isinstance(event, _ATTEMPTED):
                tried.append(event.endpoint_id)
        elif isinstance(event, _ENDPOINT_EVENTS) and event.endpoint_id not in endpoints:
            endpoints[event.endpoint_id] = item.version != 1 or item.stream_id != event.endpoint_id
    for endpoint_id in tried:
        endpoints.setdefault(endpoint_id, True)
    return [k for k, load in endpoints.items() if load], [k for k, load in deliveries.items() if load]
