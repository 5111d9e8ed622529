"""The ``FlowGates`` port in SQL (ADR 0015): each endpoint's ``core.flow.Gate`` in one row of
``endpoint_gates``, read and written by ``core.flow.admit`` inside one short transaction.

Rows missing are created first (``ON CONFLICT DO NOTHING``), then read locked: on PostgreSQL
``FOR UPDATE`` (in endpoint id order, so that two claimers never wait on each other in a
circle), on SQLite under the database's write lock (``BEGIN IMMEDIATE``). So workers in several
processes admit, between them, no more than the rate and one probe at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...core import flow
from .statements import Statements, chunks
from .times import TimeColumns

__all__ = ["admit_in", "wake_in"]

_CREATE = (
    "INSERT INTO endpoint_gates (endpoint_id, probe_at_failures) VALUES (?, 0)"
    " ON CONFLICT (endpoint_id) DO NOTHING"
)
_READ = (
    "SELECT endpoint_id, arrival, probe_opened_at, probe_at_failures, probe_sent_at FROM endpoint_gates"
    " WHERE endpoint_id IN ({}) ORDER BY endpoint_id"
)
_WRITE = (
    "UPDATE endpoint_gates SET arrival = ?, probe_opened_at = ?, probe_at_failures = ?, probe_sent_at = ?"
    " WHERE endpoint_id = ?"
)
# Handed back later than their own due time (paced, or behind the breaker): due again now, or at
# their due time if that is later. Leased rows are left to their worker.
_WAKE = (
    "UPDATE deliveries SET queue_at = CASE WHEN due_at > ? THEN due_at ELSE ? END"
    " WHERE endpoint_id = ? AND lease IS NULL AND queue_at IS NOT NULL AND due_at IS NOT NULL"
    " AND queue_at > due_at AND queue_at > ?"
)


def _mark(sql: Statements, text: str) -> str:
    return text if sql.sqlite else text.replace("?", "%s")


def admit_in(
    cursor: Any,
    sql: Statements,
    times: TimeColumns,
    asks: Mapping[str, flow.Ask],
    now: datetime,
    rules: flow.BreakerRules,
) -> dict[str, flow.Admission]:
    """``core.flow.admit`` for each asked endpoint, on the cursor's open write transaction."""
    ids = sorted(asks)
    cursor.executemany(_mark(sql, _CREATE), [(endpoint_id,) for endpoint_id in ids])
    to_db, from_db = times.to_db, times.from_db

    def at(value: Any) -> datetime | None:
        return None if value is None else from_db(value)

    gates: dict[str, flow.Gate] = {}
    for chunk in chunks(ids):
        statement = sql.in_list(_READ, len(chunk)) + ("" if sql.sqlite else " FOR UPDATE")
        cursor.execute(statement, tuple(chunk))
        for row in cursor.fetchall():
            gates[row[0]] = flow.Gate(at(row[1]), at(row[2]), row[3], at(row[4]))
    admissions: dict[str, flow.Admission] = {}
    writes: list[tuple[Any, ...]] = []
    for endpoint_id in ids:
        before = gates.get(endpoint_id, flow.Gate())
        after, admissions[endpoint_id] = flow.admit(before, asks[endpoint_id], now, rules)
        if after != before:
            writes.append(
                (
                    None if after.arrival is None else to_db(after.arrival),
                    None if after.probe_opened_at is None else to_db(after.probe_opened_at),
                    after.probe_at_failures,
                    None if after.probe_sent_at is None else to_db(after.probe_sent_at),
                    endpoint_id,
                )
            )
    if writes:
        cursor.executemany(_mark(sql, _WRITE), writes)
    return admissions


def wake_in(cursor: Any, sql: Statements, times: TimeColumns, endpoint_id: str, now: datetime) -> None:
    """The endpoint's breaker closed: what waited behind it is due again (``FlowGates.wake``)."""
    at = times.to_db(now)
    cursor.execute(_mark(sql, _WAKE), (at, at, endpoint_id, at))
