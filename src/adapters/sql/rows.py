"""Rows to the core's values: the cold paths' views (SQLAlchemy rows, named columns, processed
types) and the hot paths' raw DBAPI tuples, with the two cursor helpers every hot path shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from ...core.delivery import Delivery, DeliveryStatus
from ...core.outcomes import ErrorKind
from ...core.views import AttemptView, DeliveryView, EventView
from .statements import Statements, chunks
from .times import TimeColumns

__all__ = [
    "attempt_view",
    "delivery_state",
    "delivery_view",
    "event_view",
    "select_in",
    "write_rows",
]

_STATUSES = {status.value: status for status in DeliveryStatus}

# --- rows ↔ views (the cold paths read through SQLAlchemy Core: named columns, processed types) -----


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
