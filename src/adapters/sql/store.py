"""The SQL store: the event log, its read models and the delivery queue in one database.

Every port method is a short transaction of SQLAlchemy Core statements (no ORM on any path).
The async methods run that synchronous work on the store's own threads, off the event loop:
one thread for SQLite (one writer; sqlite3 releases the GIL while it works, so the database
overlaps the HTTP loop), a small pool for PostgreSQL. ``inline=True`` runs it on the loop's
thread instead, which is what the deterministic simulation's virtual-time loop needs.
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
from sqlalchemy import Connection, Engine, Select, and_, bindparam, func, insert, select, text, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from ...core.delivery import DeliveryStatus
from ...core.endpoint import EndpointStatus
from ...core.errors import ConcurrencyConflict
from ...core.ports import RecordedEvent, StreamAppend
from ...core.views import AttemptView, DeliveryView, DueDelivery, EndpointView, EventView
from .codec import EventCodec, StoredEvent, require_aware
from .engine import DEFAULT_URL, create_engine, write_options
from .migrate import check_schema, ensure_schema
from .projection import (
    attempt_view,
    clear_read_models,
    delivery_view,
    endpoint_view,
    event_view,
    project,
)
from .schema import attempts, deliveries, endpoints, events, published_events

__all__ = ["SqlStore", "claim_query", "open_store", "rebuild_read_models"]

T = TypeVar("T")

# Appends on PostgreSQL take this transaction-scoped advisory lock: positions are then assigned
# in commit order, so a reader following ``read_all`` never sees position n + 1 before n.
_APPEND_LOCK = 0x61775F65  # "aw_e"
_REBUILD_PAGE = 1000


def open_store(
    url: str | URL | None = None,
    *,
    inline: bool = False,
    pool_size: int = 4,
    codec: EventCodec | None = None,
    migrate: bool | None = None,
) -> SqlStore:
    """A store on ``url`` (default: ``DEFAULT_URL``, a SQLite file in the working directory).

    SQLite's schema is created or upgraded here (``migrate`` defaults to True for it); for
    PostgreSQL ``migrate`` defaults to False and the schema must already be at the latest
    revision (``attribution_webhooks.adapters.sql.upgrade``, the CLI's ``db upgrade``).
    ``inline`` runs the database work on the caller's thread: see the module's docstring.
    """
    engine = create_engine(url or DEFAULT_URL, pool_size=pool_size)
    try:
        if migrate if migrate is not None else is_sqlite_engine(engine):
            ensure_schema(engine)
        else:
            check_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    threads = 1 if is_sqlite_engine(engine) else pool_size
    executor = None if inline else ThreadPoolExecutor(threads, thread_name_prefix="aw-store")
    return SqlStore(engine, codec or EventCodec(), executor)


def is_sqlite_engine(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@define
class SqlStore:
    """Implements ``attribution_webhooks.core.ports.Storage`` over SQLAlchemy Core.

    Build it with ``open_store``. ``executor`` None means inline: the work runs on the loop.
    """

    engine: Engine
    codec: EventCodec = field(factory=EventCodec)
    executor: ThreadPoolExecutor | None = None
    _sqlite: bool = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._sqlite = is_sqlite_engine(self.engine)

    def close(self) -> None:
        """Wait for work in progress, then close every connection."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        self.engine.dispose()

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        if self.executor is None:
            return work(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(work, *args))

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**write_options())
            with conn.begin():
                yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # --- EventStore -------------------------------------------------------------------------

    async def append(self, *appends: StreamAppend) -> int:
        return await self._run(self._append, appends)

    def _append(self, appends: Sequence[StreamAppend]) -> int:
        try:
            with self._writing() as conn:
                return self._append_in(conn, appends)
        except IntegrityError as error:
            # The unique (stream_id, version) index caught a writer that the version check did not
            # see (another process's transaction). Name the streams that moved.
            streams = self._conflicting(appends) or tuple(dict.fromkeys(a.stream_id for a in appends))
            raise ConcurrencyConflict(streams) from error

    def _append_in(self, conn: Connection, appends: Sequence[StreamAppend]) -> int:
        if not self._sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
        current = _stream_versions(conn, {a.stream_id for a in appends})
        versions: dict[str, int] = {}
        conflicts: list[str] = []
        for append in appends:
            at = versions.get(append.stream_id, current.get(append.stream_id, 0))
            if at != append.expected_version:
                conflicts.append(append.stream_id)
            versions[append.stream_id] = at + len(append.events)
        if conflicts:
            raise ConcurrencyConflict(tuple(dict.fromkeys(conflicts)))
        position: int = conn.execute(_LAST_POSITION).scalar_one()
        recorded: list[RecordedEvent] = []
        rows: list[dict[str, Any]] = []
        for append in appends:
            version = append.expected_version
            for event in append.events:
                position += 1
                version += 1
                stored = self.codec.encode(event)
                recorded.append(RecordedEvent(position, append.stream_id, version, event))
                rows.append(
                    {
                        "position": position,
                        "stream_id": append.stream_id,
                        "version": version,
                        "event_type": stored.event_type,
                        "schema_version": stored.schema_version,
                        "data": stored.data,
                    }
                )
        if rows:
            conn.execute(insert(events), rows)
            project(conn, recorded)
        return position

    def _conflicting(self, appends: Sequence[StreamAppend]) -> tuple[str, ...]:
        with self._reading() as conn:
            current = _stream_versions(conn, {a.stream_id for a in appends})
        seen: set[str] = set()
        conflicts: list[str] = []
        for append in appends:
            if append.stream_id not in seen and current.get(append.stream_id, 0) != append.expected_version:
                conflicts.append(append.stream_id)
            seen.add(append.stream_id)
        return tuple(conflicts)

    async def read(self, stream_id: str) -> Sequence[RecordedEvent]:
        query = select(events).where(events.c.stream_id == stream_id).order_by(events.c.version)
        return await self._run(self._read_events, query)

    async def read_all(self, after: int = 0, limit: int = 1000) -> Sequence[RecordedEvent]:
        query = select(events).where(events.c.position > after).order_by(events.c.position).limit(limit)
        return await self._run(self._read_events, query)

    def _read_events(self, query: Any) -> list[RecordedEvent]:
        with self._reading() as conn:
            return _decode_rows(self.codec, conn.execute(query))

    # --- EndpointDirectory ------------------------------------------------------------------

    async def endpoint(self, endpoint_id: str) -> EndpointView | None:
        found = await self.endpoints([endpoint_id])
        return found.get(endpoint_id)

    async def endpoints(self, endpoint_ids: Collection[str]) -> Mapping[str, EndpointView]:
        return await self._run(self._endpoints, list(endpoint_ids))

    def _endpoints(self, endpoint_ids: list[str]) -> dict[str, EndpointView]:
        if not endpoint_ids:
            return {}
        with self._reading() as conn:
            rows = conn.execute(select(endpoints).where(endpoints.c.endpoint_id.in_(endpoint_ids)))
            return {row.endpoint_id: endpoint_view(row) for row in rows}

    async def subscribers(self, account_id: str, event_type: str) -> Sequence[EndpointView]:
        query = (
            select(endpoints)
            .where(
                endpoints.c.account_id == account_id,
                endpoints.c.status.in_([EndpointStatus.ENABLED.value, EndpointStatus.DISABLED.value]),
            )
            .order_by(endpoints.c.registered_position)
        )
        views = await self._run(self._endpoint_list, query)
        return [view for view in views if event_type in view.endpoint.event_types]

    async def list_endpoints(
        self, account_id: str, after: str | None = None, limit: int = 100
    ) -> Sequence[EndpointView]:
        query = select(endpoints).where(
            endpoints.c.account_id == account_id, endpoints.c.status != EndpointStatus.DELETED.value
        )
        if after is not None:
            query = query.where(endpoints.c.endpoint_id > after)
        query = query.order_by(endpoints.c.endpoint_id).limit(limit)
        return await self._run(self._endpoint_list, query)

    def _endpoint_list(self, query: Any) -> list[EndpointView]:
        with self._reading() as conn:
            return [endpoint_view(row) for row in conn.execute(query)]

    # --- DeliveryQueue ----------------------------------------------------------------------

    async def claim(self, now: datetime, limit: int, lease_for: timedelta) -> Sequence[DueDelivery]:
        require_aware(now)
        return await self._run(self._claim, now, limit, lease_for)

    def _claim(self, now: datetime, limit: int, lease_for: timedelta) -> list[DueDelivery]:
        if limit <= 0:
            return []
        leased_until = now + lease_for
        lease = secrets.token_hex(12)
        # Selected in the order the port promises, then leased by primary key in the same
        # transaction. On SQLite that transaction holds the single write lock from its first
        # statement (BEGIN IMMEDIATE), so nobody can claim in between; on PostgreSQL the rows
        # are locked as they are selected, and rows another claimer holds are skipped. (SQLite's
        # UPDATE … RETURNING cannot return the pre-update due time the order needs.)
        query = claim_query(now, limit, skip_locked=not self._sqlite)
        with self._writing() as conn:
            rows = conn.execute(query).all()
            if not rows:
                return []
            conn.execute(
                update(deliveries)
                .where(deliveries.c.delivery_id.in_([row.delivery_id for row in rows]))
                .values(queue_at=leased_until, lease=lease)
            )
        return [
            DueDelivery(delivery_view(row).delivery, row.version, lease, leased_until, row.body)
            for row in rows
        ]

    async def release(self, returns: Sequence[tuple[DueDelivery, datetime]]) -> None:
        for _, due_at in returns:
            require_aware(due_at)
        if returns:
            await self._run(self._release, list(returns))

    def _release(self, returns: list[tuple[DueDelivery, datetime]]) -> None:
        statement = (
            update(deliveries)
            .where(
                deliveries.c.delivery_id == _param("b_id", deliveries.c.delivery_id),
                deliveries.c.lease == _param("b_lease", deliveries.c.lease),
            )
            .values(queue_at=_param("b_due", deliveries.c.queue_at), lease=None)
        )
        rows = [
            {"b_id": d.delivery.delivery_id, "b_lease": d.lease, "b_due": due_at} for d, due_at in returns
        ]
        with self._writing() as conn:
            conn.execute(statement, rows)

    async def next_due(self) -> datetime | None:
        return await self._run(self._next_due)

    def _next_due(self) -> datetime | None:
        query = (
            select(deliveries.c.queue_at)
            .where(deliveries.c.queue_at.isnot(None))
            .order_by(deliveries.c.queue_at)
            .limit(1)
        )
        with self._reading() as conn:
            found: datetime | None = conn.execute(query).scalar()
            return found

    # --- DeliveryLog ------------------------------------------------------------------------

    async def delivery(self, delivery_id: str) -> DeliveryView | None:
        found = await self._run(
            self._delivery_list, select(deliveries).where(deliveries.c.delivery_id == delivery_id)
        )
        return found[0] if found else None

    async def attempts(self, delivery_id: str) -> Sequence[AttemptView]:
        query = select(attempts).where(attempts.c.delivery_id == delivery_id).order_by(attempts.c.position)
        return await self._run(self._attempt_list, query)

    def _attempt_list(self, query: Any) -> list[AttemptView]:
        with self._reading() as conn:
            return [attempt_view(row) for row in conn.execute(query)]

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
    ) -> Sequence[DeliveryView]:
        query = select(deliveries).where(deliveries.c.account_id == account_id)
        if endpoint_id is not None:
            query = query.where(deliveries.c.endpoint_id == endpoint_id)
        if event_id is not None:
            query = query.where(deliveries.c.event_id == event_id)
        if statuses is not None:
            query = query.where(deliveries.c.status.in_([DeliveryStatus(s).value for s in statuses]))
        if since is not None:
            require_aware(since)
            query = query.where(deliveries.c.updated_at >= since)
        if before is not None:
            query = query.where(deliveries.c.delivery_id < before)
        query = query.order_by(deliveries.c.delivery_id.desc()).limit(limit)
        return await self._run(self._delivery_list, query)

    def _delivery_list(self, query: Any) -> list[DeliveryView]:
        with self._reading() as conn:
            return [delivery_view(row) for row in conn.execute(query)]

    async def event(self, account_id: str, event_id: str) -> EventView | None:
        return await self._run(self._event, account_id, event_id)

    def _event(self, account_id: str, event_id: str) -> EventView | None:
        query = select(published_events).where(
            published_events.c.account_id == account_id, published_events.c.event_id == event_id
        )
        with self._reading() as conn:
            row = conn.execute(query).first()
            return None if row is None else event_view(row)

    # --- maintenance ------------------------------------------------------------------------

    def rebuild_read_models(self) -> int:
        """Empty every read model and replay the whole log into it, in one transaction; returns
        the number of events replayed. Run it with the workers stopped: leases are forgotten."""
        replayed = 0
        with self._writing() as conn:
            clear_read_models(conn)
            after = 0
            while True:
                query = (
                    select(events)
                    .where(events.c.position > after)
                    .order_by(events.c.position)
                    .limit(_REBUILD_PAGE)
                )
                page = _decode_rows(self.codec, conn.execute(query))
                if not page:
                    return replayed
                project(conn, page)
                replayed += len(page)
                after = page[-1].position


def claim_query(now: datetime, limit: int, *, skip_locked: bool) -> Select[Any]:
    """The pending deliveries due at ``now``, earliest first, with their bodies. It reads only the
    partial index of pending rows (``ix_deliveries_queue``): finished ones are not in it."""
    query = (
        select(deliveries, published_events.c.body)
        .join(
            published_events,
            and_(
                published_events.c.account_id == deliveries.c.account_id,
                published_events.c.event_id == deliveries.c.event_id,
            ),
        )
        .where(deliveries.c.queue_at.isnot(None), deliveries.c.queue_at <= now)
        .order_by(deliveries.c.queue_at, deliveries.c.delivery_id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(of=deliveries, skip_locked=True)
    return query


def rebuild_read_models(url: str | URL, *, codec: EventCodec | None = None) -> int:
    """Rebuild the read models of the database at ``url`` from its event log (the CLI's command)."""
    store = open_store(url, inline=True, codec=codec)
    try:
        return store.rebuild_read_models()
    finally:
        store.close()


def _param(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


# Built once: the hot path pays for executing statements, not for constructing them.
_LAST_POSITION = select(func.coalesce(func.max(events.c.position), 0))
_STREAM_VERSIONS = (
    select(events.c.stream_id, func.max(events.c.version))
    .where(events.c.stream_id.in_(bindparam("stream_ids", expanding=True)))
    .group_by(events.c.stream_id)
)


def _stream_versions(conn: Connection, stream_ids: Collection[str]) -> dict[str, int]:
    return {row[0]: row[1] for row in conn.execute(_STREAM_VERSIONS, {"stream_ids": list(stream_ids)})}


def _decode_rows(codec: EventCodec, rows: Any) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            row.position,
            row.stream_id,
            row.version,
            codec.decode(StoredEvent(row.event_type, row.schema_version, row.data)),
        )
        for row in rows
    ]
