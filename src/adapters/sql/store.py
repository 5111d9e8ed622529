"""The SQL store: the event log, its read models and the delivery queue in one database.

Every port method is a short transaction. The hot ones (appends with their projections, claims,
endpoint lookups, ``next_due``, releases, reading the log) run plain SQL on a DBAPI connection
that each of the store's threads holds (``statements.py``, ``connections.py``); the API's
queries of the delivery log run SQLAlchemy Core statements. No ORM anywhere.

The async methods run that synchronous work on the store's own threads, off the event loop:
one thread for SQLite (one writer; sqlite3 releases the GIL while it works, so the database
overlaps the HTTP loop), a small pool for PostgreSQL. Work reaches a thread through a ``Lane``,
a batch at a time, and the appends of a batch commit in one transaction (group commit); on
PostgreSQL only appends go through a lane, and other work runs on the pool in parallel.
``inline=True`` runs everything on the loop's thread instead, which is what the deterministic
simulation's virtual-time loop needs.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from attrs import define, field
from sqlalchemy import Connection, Engine

from ...core import flow
from ...core.ports import RecordedEvent, StreamAppend
from ...core.retention import PurgeReport
from ...core.views import (
    DueDelivery,
    EndpointView,
    QueueStats,
)
from ..crypto import Keyring
from .appending import Appender, AppendStats
from .codec import EndpointStates, EventCodec, StoredEvent, require_aware
from .connections import Connections
from .engine import is_sqlite
from .gates import admit_in, wake_in
from .lanes import Job, Lane
from .log_queries import LogQueries
from .outbox import SqlOutbox, Transaction
from .projection import Projection
from .reports import queue_stats
from .retention import SqlHistory
from .rows import delivery_state, write_rows
from .schema import READ_MODELS
from .secret_keys import SqlKeys, store_keyring
from .statements import Statements, chunks, postgres_statements, sqlite_statements
from .times import TimeColumns, postgres_times, sqlite_times

__all__ = ["SqlStore"]

T = TypeVar("T")

_REBUILD_PAGE = 1000


@define
class SqlStore(LogQueries):
    """Implements ``attribution_webhooks.core.ports.Storage`` over SQLAlchemy and the DBAPI.

    Build it with ``open_store``. ``executor`` None means inline: the work runs on the loop.
    """

    engine: Engine
    codec: EventCodec = field(factory=EventCodec)
    executor: ThreadPoolExecutor | None = None
    #: Seals webhook secrets; None: the database's development key (see ``open_store``).
    keyring: Keyring | None = field(default=None, kw_only=True)
    #: The keyring is the database's own development key (``secret_keys.DEVELOPMENT_KEY_NOTE``).
    development_key: bool = field(default=False, kw_only=True)
    _sqlite: bool = field(init=False)
    _sql: Statements = field(init=False)
    _times: TimeColumns = field(init=False)
    _states: EndpointStates = field(init=False)  # opened: what the ports hand out
    _connections: Connections = field(init=False)
    _keys: SqlKeys = field(init=False)  # the data keys of webhook secrets (ADR 0010)
    _appender: Appender = field(init=False)
    _history: SqlHistory = field(init=False)  # retention (ADR 0018)
    # SQLite: every call goes through this lane (its one thread); PostgreSQL: appends only.
    _lane: Lane | None = field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._sqlite = is_sqlite(self.engine)
        self._sql = sqlite_statements if self._sqlite else postgres_statements
        self._times = sqlite_times if self._sqlite else postgres_times
        self._connections = Connections(self.engine)
        keyring = self.keyring if self.keyring is not None else store_keyring(self.engine, None)
        self._keys = SqlKeys(keyring, self._connections, self._sqlite, self._times)
        self._states = self._keys.states
        projection = Projection(self._sql, self._times, EndpointStates(), self._keys)
        self._appender = Appender(self._connections, self._sql, self.codec, projection, self._keys)
        self._history = SqlHistory(self._connections, self._sql, self._times)
        if self.executor is not None:
            self._lane = Lane(self.executor, self._run_batch)

    def close(self) -> None:
        """Wait for work in progress, then close every connection."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        self._connections.close()
        self.engine.dispose()

    async def _point_read(self, work: Callable[..., T], *args: Any) -> T:
        """A read of a few rows by index. On SQLite it runs on the caller's thread, on that
        thread's own connection: it takes 10-20 µs, while handing it to the store's thread and the
        result back costs 40-100 µs and would queue it behind the writes (a WAL reader never
        waits for the writer). On PostgreSQL a read is a round trip: it goes to the pool."""
        if self.executor is None or self._sqlite:
            return work(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(work, *args))

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        if self.executor is None:
            return work(*args)
        if self._sqlite:
            assert self._lane is not None
            result: T = await self._lane.submit(Job(call=partial(work, *args)))
            return result
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(work, *args))

    def _run_batch(self, batch: list[Job]) -> None:
        """A lane's batch, on the store's thread: its appends in one transaction, then its calls."""
        appends = [job for job in batch if job.appends is not None]
        if appends:
            self._appender.commit(appends)
        for job in batch:
            if job.call is not None:
                try:
                    job.result = job.call()
                except Exception as error:
                    job.error = error

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def within(self, transaction: Transaction, on_commit: Callable[[], None] | None = None) -> SqlOutbox:
        """The store inside the caller's open transaction: the transactional outbox (``outbox.py``)."""
        return SqlOutbox(self._appender, self._endpoint_views, transaction, self.engine.url, on_commit)

    @property
    def append_stats(self) -> AppendStats:
        """How many append calls were written in how many transactions (group commit)."""
        return self._appender.stats

    # --- EventStore -------------------------------------------------------------------------

    async def append(self, *appends: StreamAppend) -> int:
        job = Job(appends=appends)
        if self._lane is None:
            self._appender.commit([job])
            if job.error is not None:
                raise job.error
            position: int = job.result
            return position
        result: int = await self._lane.submit(job)
        return result

    async def read(self, stream_id: str) -> Sequence[RecordedEvent]:
        return await self._run(self._read_events, self._sql.read_stream, (stream_id,))

    async def read_all(self, after: int = 0, limit: int = 1000) -> Sequence[RecordedEvent]:
        return await self._run(self._read_events, self._sql.read_after, (after, limit))

    def _read_events(self, statement: str, parameters: tuple[Any, ...]) -> list[RecordedEvent]:
        return self._keys.open_events(
            _decode_rows(self.codec, self._connections.query(statement, parameters))
        )

    def destroy_expired_keys(self, now: datetime) -> int:
        """Destroy the keys of secrets whose rotation grace ended by ``now`` (claims also do, every
        ``PURGE_INTERVAL``); returns how many."""
        return self._keys.purge(require_aware(now), force=True)

    def rewrap_keys(self) -> int:
        """Wrap every data key with the keyring's newest master key; returns how many changed."""
        return self._keys.rewrap()

    # --- EndpointDirectory ------------------------------------------------------------------

    async def endpoint(self, endpoint_id: str) -> EndpointView | None:
        found = await self.endpoints([endpoint_id])
        return found.get(endpoint_id)

    async def endpoints(self, endpoint_ids: Collection[str]) -> Mapping[str, EndpointView]:
        if not endpoint_ids:
            return {}
        return await self._point_read(self._endpoints, list(dict.fromkeys(endpoint_ids)))

    def _endpoints(self, endpoint_ids: list[str]) -> dict[str, EndpointView]:
        views: dict[str, EndpointView] = {}
        sql = self._sql
        for chunk in chunks(endpoint_ids):
            rows = self._connections.query(sql.in_list(sql.endpoints, len(chunk)), chunk)
            views.update(zip((row[0] for row in rows), self._endpoint_views(rows), strict=True))
        return views

    def _endpoint_views(self, rows: Sequence[Any]) -> list[EndpointView]:
        """From rows of ``endpoint_id, version, failing_since, state, failures``; states not decoded yet are
        opened together (one key query for the lot)."""
        from_db = self._times.from_db
        states = self._states.decode_all([row[3] for row in rows])
        return [
            EndpointView(state, row[1], None if row[2] is None else from_db(row[2]), row[4])
            for state, row in zip(states, rows, strict=True)
        ]

    async def subscribers(self, account_id: str, event_type: str) -> Sequence[EndpointView]:
        return await self._point_read(self._subscribers, account_id, event_type)

    def _subscribers(self, account_id: str, event_type: str) -> list[EndpointView]:
        rows = self._connections.query(self._sql.subscribers, (account_id,))
        views = self._endpoint_views(rows)
        return [view for view in views if event_type in view.endpoint.event_types]

    # --- DeliveryQueue ----------------------------------------------------------------------

    async def claim(self, now: datetime, limit: int, lease_for: timedelta) -> Sequence[DueDelivery]:
        require_aware(now)
        if limit <= 0:
            return []
        return await self._run(self._claim, now, limit, lease_for)

    def _claim(self, now: datetime, limit: int, lease_for: timedelta) -> list[DueDelivery]:
        self._keys.purge(now)  # workers claim all the time: rotated-out secrets end on schedule
        leased_until = now + lease_for
        lease = secrets.token_hex(12)
        sql, times = self._sql, self._times
        until = times.to_db(leased_until)
        if self._sqlite:
            # Selected in the order the port promises, then leased by primary key in the same
            # transaction, which holds the single write lock from its first statement (BEGIN
            # IMMEDIATE), so nobody can claim in between. (SQLite's UPDATE … RETURNING cannot
            # return the pre-update due time the order needs.)
            with self._connections.transaction(sql.begin_claim) as cursor:
                cursor.execute(sql.claim, (times.to_db(now), limit))
                rows = cursor.fetchall()
                for chunk in chunks([row[0] for row in rows]):
                    cursor.execute(sql.in_list(sql.lease, len(chunk)), (until, lease, *chunk))
        else:
            # One statement: rows are locked as they are selected, rows another claimer holds
            # are skipped, and each comes back with the due time it had before, for the order.
            # (Were the connection lost while it ran, and the claim tried again on a new one,
            # rows leased by the lost attempt wait for their lease to expire, as a dead
            # worker's do.)
            rows = self._connections.query(sql.claim, (times.to_db(now), limit, until, lease))
            rows.sort(key=lambda row: (row[12], row[0]))
            return [
                DueDelivery(delivery_state(row, times), row[9], lease, leased_until, row[10], row[11])
                for row in rows
            ]
        claimed = []
        for row in rows:
            state = delivery_state(row, times)
            # The number the lease statement gave it: past the recorded attempts and past the
            # leases before (row[11], as it was before this claim).
            attempt = max(row[11] or 0, state.attempts) + 1
            claimed.append(DueDelivery(state, row[9], lease, leased_until, row[10], attempt))
        return claimed

    async def renew(self, leases: Sequence[DueDelivery], until: datetime) -> None:
        require_aware(until)
        if leases:
            await self._run(self._renew, list(leases), until)

    def _renew(self, leases: list[DueDelivery], until: datetime) -> None:
        at = self._times.to_db(until)
        if not self._sqlite:  # one statement that skips rows being recorded (statements.py)
            ids = [due.delivery.delivery_id for due in leases]
            self._connections.query(self._sql.renew, (ids, [due.lease for due in leases], at))
            return
        rows = [(at, due.delivery.delivery_id, due.lease) for due in leases]
        with self._connections.transaction(self._sql.begin_claim) as cursor:
            write_rows(cursor, self._sql.renew, rows)

    async def release(self, returns: Sequence[tuple[DueDelivery, datetime]]) -> None:
        for _, due_at in returns:
            require_aware(due_at)
        if returns:
            await self._run(self._release, list(returns))

    def _release(self, returns: list[tuple[DueDelivery, datetime]]) -> None:
        to_db = self._times.to_db
        rows = [
            (to_db(due_at), due.attempt_before, due.delivery.delivery_id, due.lease)
            for due, due_at in returns
        ]
        with self._connections.transaction(self._sql.begin_claim) as cursor:
            write_rows(cursor, self._sql.release, rows)

    # --- FlowGates ---------------------------------------------------------------------------

    async def admit(
        self, asks: Mapping[str, flow.Ask], now: datetime, rules: flow.BreakerRules
    ) -> Mapping[str, flow.Admission]:
        require_aware(now)
        if not asks:
            return {}
        return await self._run(self._admit, dict(asks), now, rules)

    def _admit(
        self, asks: dict[str, flow.Ask], now: datetime, rules: flow.BreakerRules
    ) -> dict[str, flow.Admission]:
        with self._connections.transaction(self._sql.begin_claim) as cursor:
            return admit_in(cursor, self._sql, self._times, asks, now, rules)

    async def wake(self, endpoint_id: str, now: datetime) -> None:
        require_aware(now)
        await self._run(self._wake, endpoint_id, now)

    def _wake(self, endpoint_id: str, now: datetime) -> None:
        with self._connections.transaction(self._sql.begin_claim) as cursor:
            wake_in(cursor, self._sql, self._times, endpoint_id, now)

    async def next_due(self) -> datetime | None:
        return await self._point_read(self._next_due)

    def _next_due(self) -> datetime | None:
        rows = self._connections.query(self._sql.next_due)
        return self._times.from_db(rows[0][0]) if rows else None

    async def queue_stats(self, now: datetime) -> QueueStats:
        # Counting held deliveries scans ``deliveries``: on SQLite it runs on a thread of its
        # own, not the store's, where it would hold appends back (a WAL reader never waits).
        if self._sqlite and self.executor is not None:
            return await asyncio.to_thread(self._queue_stats, require_aware(now))
        return await self._run(self._queue_stats, require_aware(now))

    def _queue_stats(self, now: datetime) -> QueueStats:
        with self._reading() as conn:
            return queue_stats(conn, now)

    # --- History (retention, ADR 0018) -------------------------------------------------------

    async def purge_events(
        self, horizon: datetime, now: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> PurgeReport:
        require_aware(horizon)
        require_aware(now)
        return await self._run(self._history.purge_events, horizon, now, after, limit)

    async def purge_deleted(self, horizon: datetime, limit: int) -> PurgeReport:
        return await self._run(self._history.purge_deleted, require_aware(horizon), limit)

    async def purged_event(self, account_id: str, event_id: str) -> tuple[datetime, datetime] | None:
        return await self._point_read(self._history.purged_event, account_id, event_id)

    # --- maintenance ------------------------------------------------------------------------

    def rebuild_read_models(self) -> int:
        """Empty every read model and replay the whole log into it, in one transaction; returns
        the number of events replayed. Run it with the workers stopped: leases are forgotten.
        The transaction holds the append lock, so no append interleaves."""
        replayed = 0
        projection = self._appender.projection
        with self._connections.transaction(self._sql.begin_append) as cursor:
            for table in READ_MODELS:
                cursor.execute(f"DELETE FROM {table.name}")
            after = 0
            while True:
                cursor.execute(self._sql.read_after, (after, _REBUILD_PAGE))
                page = _decode_rows(self.codec, cursor.fetchall())
                if not page:
                    return replayed
                projection.project(cursor, page)
                replayed += len(page)
                after = page[-1].position


def _decode_rows(codec: EventCodec, rows: Sequence[Any]) -> list[RecordedEvent]:
    """From ``position, stream_id, version, event_type, schema_version, data``."""
    return [
        RecordedEvent(row[0], row[1], row[2], codec.decode(StoredEvent(row[3], row[4], row[5])))
        for row in rows
    ]
