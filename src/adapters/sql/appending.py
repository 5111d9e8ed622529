"""Appending to the event log: one transaction for any number of ``append`` calls (group commit).

A transaction holds the append lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock),
reads the versions of the streams it must check and the last position, then takes the calls in
order: a call whose streams are not at their expected versions fails alone with its own
``ConcurrencyConflict``; the others get their positions, one after another, and a stream two
calls touch is at the first call's new version when the second is checked. All the events go in
with one ``executemany``, the read models are projected, and everything commits at once.

Streams expected at version 0 are not looked up: the unique ``(stream_id, version)`` index refuses
version 1 of a stream that exists. When it does, the transaction is rolled back and run again
checking every stream, which names the conflicting calls exactly (the lock keeps other writers
out, so the check is exact). Any other failure of a merged transaction is retried call by call,
so that one call's bad data cannot fail its neighbours; a database that cannot be reached or
written fails every call of the batch, as it would each of them alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import define, field
from sqlalchemy.exc import IntegrityError, InterfaceError, InternalError, OperationalError

from ...core.errors import ConcurrencyConflict
from ...core.events import DomainEvent
from ...core.ports import RecordedEvent, StreamAppend
from .codec import EventCodec, StoredEvent
from .connections import Connections
from .lanes import Job
from .projection import Projection
from .rows import select_in, write_rows
from .secret_keys import SqlKeys
from .statements import _LAST_POSITION, APPEND_LOCK, Statements

__all__ = ["AppendStats", "Appender"]

# Errors of the database rather than of one call's data: retrying call by call would only repeat them.
_ENVIRONMENTAL = (OperationalError, InterfaceError, InternalError)


@define
class _Call:
    """One ``append`` call, encoded: ``stored[i]`` holds the rows of ``appends[i]``'s events."""

    job: Job
    appends: Sequence[StreamAppend]
    stored: list[list[StoredEvent]] = field(factory=list)
    # The events with their secrets sealed (what the log and the read models hold), and the
    # data keys that seal them, inserted in the same transaction.
    sealed: list[list[DomainEvent]] = field(factory=list)
    keys: list[tuple[str, ...]] = field(factory=list)


@define
class AppendStats:
    """How appends were grouped: ``calls`` written in ``transactions`` (fewer under load).
    Calls that conflicted or failed are not counted, nor transactions that wrote nothing."""

    calls: int = 0
    transactions: int = 0


@define
class Appender:
    """Commits batches of ``append`` calls (see the module's docstring)."""

    connections: Connections
    sql: Statements
    codec: EventCodec
    projection: Projection
    keys: SqlKeys
    stats: AppendStats = field(factory=AppendStats)

    def commit(self, jobs: Sequence[Job]) -> None:
        """Append every job's ``appends``; set each job's ``result`` (its last position) or ``error``."""
        calls: list[_Call] = []
        for job in jobs:
            try:
                calls.append(self._encode(job))
            except Exception as error:  # a naive datetime, say: this call's fault alone
                job.error = error
        if calls:
            self._commit(calls, check_all=False)
            self.keys.after_commit()

    def _encode(self, job: Job) -> _Call:
        """The job's events with their secrets sealed, encoded as rows."""
        assert job.appends is not None
        call = _Call(job, job.appends)
        for append in call.appends:
            sealed, keys = self.keys.seal(append.events)
            call.sealed.append(sealed)
            call.keys += keys
        # One pass over every event (a published event's appends hold one event each).
        rows = self.codec.encode_all(event for sealed in call.sealed for event in sealed)
        start = 0
        for sealed in call.sealed:
            call.stored.append(rows[start : start + len(sealed)])
            start += len(sealed)
        return call

    def _commit(self, calls: list[_Call], *, check_all: bool) -> None:
        try:
            outcomes = self._transaction(calls, check_all=check_all)
        except IntegrityError as error:
            if not check_all:  # a stream expected new exists: find out which, exactly
                self._commit(calls, check_all=True)
            elif len(calls) > 1:
                for call in calls:
                    self._commit([call], check_all=True)
            else:
                # The exact check passed, yet a row clashed: the read models disagree with the
                # log. Nothing was written; say which call it was, as the port's error.
                (call,) = calls
                conflict = ConcurrencyConflict(tuple(dict.fromkeys(a.stream_id for a in call.appends)))
                conflict.__cause__ = error
                call.job.error = conflict
            return
        except Exception as error:
            if len(calls) > 1 and not isinstance(error, _ENVIRONMENTAL):
                for call in calls:
                    self._commit([call], check_all=check_all)
            else:
                for call in calls:
                    call.job.error = error
            return
        written = 0
        for call, outcome in zip(calls, outcomes, strict=True):
            if isinstance(outcome, ConcurrencyConflict):
                call.job.error = outcome
            else:
                call.job.result = outcome
                written += 1
        if written:
            self.stats.calls += written
            self.stats.transactions += 1

    def _transaction(self, calls: list[_Call], *, check_all: bool) -> list[int | ConcurrencyConflict]:
        sql = self.sql
        with self.connections.transaction(sql.begin_append) as cursor:
            if sql.last_position is None:
                while cursor.nextset():  # psycopg: one result per statement of ``begin_append``
                    pass
            else:
                cursor.execute(sql.last_position)
            return self._write(cursor, calls, check_all=check_all)

    def append_within(self, cursor: Any, appends: Sequence[StreamAppend]) -> int:
        """Append one call's ``appends`` on ``cursor``, inside a transaction that its caller
        opened and will commit or roll back (the transactional outbox: ``outbox.py``).

        Every stream is checked (``check_all``): a clash with the unique index would abort the
        caller's whole transaction on PostgreSQL, where no rollback-and-retry is ours to do. On
        PostgreSQL the append lock is taken here and held until the caller's transaction ends;
        on SQLite the caller's first write took the database's write lock. Raises
        ``ConcurrencyConflict`` having written nothing; returns the last position written."""
        call = self._encode(Job(appends=appends))
        if not self.sql.sqlite:
            cursor.execute(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})")
        cursor.execute(_LAST_POSITION)
        [outcome] = self._write(cursor, [call], check_all=True)
        if isinstance(outcome, ConcurrencyConflict):
            raise outcome
        self.stats.calls += 1
        self.stats.transactions += 1
        return outcome

    def _write(self, cursor: Any, calls: list[_Call], *, check_all: bool) -> list[int | ConcurrencyConflict]:
        """The calls' events, data keys and projections, on a cursor whose last result is the
        last position."""
        sql = self.sql
        outcomes: list[int | ConcurrencyConflict] = []
        checked = {
            append.stream_id
            for call in calls
            for append in call.appends
            if check_all or append.expected_version or not append.events
        }
        position: int = cursor.fetchone()[0]
        current = self._versions(cursor, checked)
        versions: dict[str, int] = {}  # as the calls accepted so far leave them
        rows: list[tuple[Any, ...]] = []
        keys: list[tuple[str, ...]] = []
        recorded: list[RecordedEvent] = []
        for call in calls:
            conflict = _check(call.appends, versions, current)
            if conflict is not None:
                outcomes.append(conflict)
                continue
            keys += call.keys
            for append, sealed, stored in zip(call.appends, call.sealed, call.stored, strict=True):
                stream_id = append.stream_id
                version = append.expected_version
                for event, row in zip(sealed, stored, strict=True):
                    position += 1
                    version += 1
                    rows.append((position, stream_id, version, row.event_type, row.schema_version, row.data))
                    recorded.append(RecordedEvent(position, stream_id, version, event))
            outcomes.append(position)
        if keys:
            self.keys.insert(cursor, keys)
        if rows:
            write_rows(cursor, sql.insert_events, rows)
            self.projection.project(cursor, recorded)
        return outcomes

    def _versions(self, cursor: Any, stream_ids: set[str]) -> dict[str, int]:
        if not stream_ids:
            return {}
        rows = select_in(cursor, self.sql, self.sql.stream_versions, sorted(stream_ids))
        return dict(rows)


def _check(
    appends: Sequence[StreamAppend], versions: dict[str, int], current: dict[str, int]
) -> ConcurrencyConflict | None:
    """Check one call against the streams as the calls before it leave them; on success, move
    ``versions`` on by its events. A stream not in ``current`` was not looked up (or is new)."""
    moved: dict[str, int] = {}
    conflicts: list[str] = []
    for append in appends:
        stream_id = append.stream_id
        at = moved.get(stream_id)
        if at is None:
            at = versions.get(stream_id)
            if at is None:
                at = current.get(stream_id, 0)
        if at != append.expected_version:
            conflicts.append(stream_id)
        moved[stream_id] = at + len(append.events)
    if conflicts:
        return ConcurrencyConflict(tuple(dict.fromkeys(conflicts)))
    versions.update(moved)
    return None
