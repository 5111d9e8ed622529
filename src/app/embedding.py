"""``Webhooks``: webhook delivery embedded in a Python service, as one object.

It wires the same parts as the service's composition root (``bootstrap.py``) over the caller's
database: the SQL store on a SQLAlchemy engine (or URL), the use cases, and a dispatcher that
runs on the caller's asyncio loop. No web framework is imported. See ``docs/embedding.md`` and
ADR 0013 for publishing inside the caller's own transaction (the transactional outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL

from ..adapters.http import EgressMode, EgressSettings, HttpTransport, check_target
from ..adapters.payloads import check_event_data
from ..adapters.signing import HmacSigner
from ..adapters.sql import SqlStore, create_engine, ensure_schema
from ..adapters.sql.engine import _sqlite_connect, write_options
from ..adapters.sql.wakeups import PostgresWakeups
from ..adapters.system import SystemClock, SystemRandom, UlidGenerator
from ..core.delivery import DeliveryStatus
from ..core.endpoint import EndpointRules
from ..core.retry import RetryPolicy
from ..core.views import AttemptView, DeliveryView, EndpointView
from ..core.wire import JsonValue
from .delivering import deliver
from .services import NewEvent, NoticeBoard, PublishResult, ServiceSettings, WebhookService
from .settings import Mode
from .worker import Dispatcher, DispatchSettings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["DEFAULT_ACCOUNT", "Webhooks"]

#: The account of an embedding service that has one (every method takes ``account=`` too).
DEFAULT_ACCOUNT = "acct_default"

_PAGE = 500


class Webhooks:
    """Register endpoints, publish events and deliver them, over your SQLAlchemy database.

    ``database``: an engine or a URL (``sqlite:///file`` or ``postgresql://…``); a SQLite engine
    must come from ``attribution_webhooks.adapters.sql.create_engine`` (WAL, ``BEGIN
    IMMEDIATE`` for writers). The schema is created or upgraded here. ``mode`` ``production``
    sends only to public ``https://`` targets; ``development`` allows ``http://`` and local
    ones. ``retry`` is the retry schedule (the spec's 1 min, 5 min, 15 min, 1 h by default);
    ``egress`` and ``dispatch`` tune outbound HTTP and the dispatcher. Close it when done.
    """

    def __init__(
        self,
        database: Engine | str | URL,
        *,
        account: str = DEFAULT_ACCOUNT,
        mode: Mode | str = Mode.PRODUCTION,
        retry: RetryPolicy | Sequence[timedelta] | None = None,
        egress: EgressSettings | None = None,
        dispatch: DispatchSettings | None = None,
    ) -> None:
        mode = Mode(mode)
        if egress is not None and egress.mode.value != mode.value:
            raise ValueError(f"egress settings are in {egress.mode} mode, the webhooks in {mode} mode")
        engine = database if isinstance(database, Engine) else create_engine(database)
        sqlite = engine.dialect.name == "sqlite"
        if not sqlite and engine.dialect.driver != "psycopg":
            raise ValueError(
                "the webhooks need PostgreSQL through psycopg 3 (postgresql+psycopg://), "
                f"not {engine.dialect.driver}"
            )
        if sqlite and not event.contains(engine, "connect", _sqlite_connect):
            raise ValueError(
                "make the SQLite engine with attribution_webhooks.adapters.sql.create_engine "
                "(WAL mode, BEGIN IMMEDIATE for writers), or pass its URL"
            )
        ensure_schema(engine)
        if not isinstance(retry, RetryPolicy):
            retry = RetryPolicy() if retry is None else RetryPolicy(tuple(retry))
        executor = ThreadPoolExecutor(1 if sqlite else 4, thread_name_prefix="aw-store")
        self.account = account
        self.store = SqlStore(engine, executor=executor)
        self.notices = NoticeBoard()
        rules = EndpointRules(require_https=mode is Mode.PRODUCTION)
        settings = ServiceSettings(rules, retry)
        self.service = WebhookService(
            self.store, SystemClock(), UlidGenerator(), SystemRandom(), settings, self.notices
        )
        self.egress = egress or EgressSettings(mode=EgressMode(mode.value))
        self.dispatch = dispatch or DispatchSettings()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def engine(self) -> Engine:
        return self.store.engine

    def close(self) -> None:
        """Wait for database work in progress, then release the connections."""
        self.store.close()

    def __enter__(self) -> Webhooks:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- endpoints --------------------------------------------------------------------------

    async def register(
        self,
        url: str,
        events: Sequence[str],
        *,
        secret: str | None = None,
        description: str = "",
        ordered: bool = False,
        rate_limit: int | None = None,
        rate_limit_burst: int = 0,
        circuit_breaker_threshold: int | None = None,
        account: str | None = None,
    ) -> EndpointView:
        """A new endpoint for ``events`` (a strong secret is generated unless given). In
        production mode the URL is checked as the API checks it: https://, and no internal
        address after DNS resolution (ValidationError on ``url``). ``ordered`` delivers its
        events one at a time in publish order (ADR 0016); ``rate_limit`` (per second, plus
        ``rate_limit_burst``) and ``circuit_breaker_threshold`` are its flow policies (ADR 0015)."""
        await check_target(url, self.egress)
        return await self.service.register_endpoint(
            account or self.account,
            url,
            events,
            secret=secret,
            description=description,
            ordered=ordered,
            rate_limit=rate_limit,
            rate_limit_burst=rate_limit_burst,
            circuit_breaker_threshold=circuit_breaker_threshold,
        )

    async def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        ordered: bool | None = None,
        rate_limit: int | None = None,
        rate_limit_burst: int | None = None,
        circuit_breaker_threshold: int | None = None,
        account: str | None = None,
    ) -> EndpointView:
        """Change what is given; the rest stays (``0`` turns a flow policy off). A new URL is
        checked as at registration."""
        if url is not None:
            await check_target(url, self.egress)
        return await self.service.update_endpoint(
            account or self.account,
            webhook_id,
            url=url,
            event_types=events,
            description=description,
            ordered=ordered,
            rate_limit=rate_limit,
            rate_limit_burst=rate_limit_burst,
            circuit_breaker_threshold=circuit_breaker_threshold,
        )

    async def webhooks(self, *, account: str | None = None) -> list[EndpointView]:
        """Every endpoint of the account that is not deleted, oldest first."""
        found: list[EndpointView] = []
        after: str | None = None
        while True:
            page = await self.service.queries.endpoints(account or self.account, after=after, limit=_PAGE)
            found += page.items
            if page.next_cursor is None:
                return found
            after = page.next_cursor

    # --- publishing -------------------------------------------------------------------------

    async def publish(
        self,
        event_type: str,
        data: Mapping[str, JsonValue],
        *,
        id: str | None = None,
        timestamp: datetime | None = None,
        account: str | None = None,
    ) -> PublishResult:
        """Publish one event (its ``data`` checked against the type's schema) in its own
        transaction. An ``id`` makes it idempotent."""
        [result] = await self.publish_batch([NewEvent(event_type, data, id, timestamp)], account=account)
        return result

    async def publish_batch(
        self, events: Iterable[NewEvent], *, account: str | None = None
    ) -> list[PublishResult]:
        """Publish every event in one transaction; a result per event, in order."""
        news = _checked(events)
        return await self.service.publish_batch(account or self.account, news)

    def publish_in(
        self,
        transaction: Connection | Session,
        event_type: str,
        data: Mapping[str, JsonValue],
        *,
        id: str | None = None,
        timestamp: datetime | None = None,
        account: str | None = None,
    ) -> PublishResult:
        """Publish one event inside your open transaction (a SQLAlchemy ``Connection`` or
        ``Session`` on this database): delivered once it commits, never if it rolls back.
        Synchronous. A dispatcher running in this process is woken when you commit."""
        news = [NewEvent(event_type, data, id, timestamp)]
        [result] = self.publish_batch_in(transaction, news, account=account)
        return result

    def publish_batch_in(
        self, transaction: Connection | Session, events: Iterable[NewEvent], *, account: str | None = None
    ) -> list[PublishResult]:
        """``publish_batch`` inside your open transaction (see ``publish_in``)."""
        news = _checked(events)
        outbox = self.store.within(transaction, on_commit=self._wake)
        return self.service.publish_within(outbox, account or self.account, news)

    def publish_sync(
        self,
        event_type: str,
        data: Mapping[str, JsonValue],
        *,
        id: str | None = None,
        timestamp: datetime | None = None,
        account: str | None = None,
    ) -> PublishResult:
        """``publish`` for synchronous code (Django, Flask, SQLAlchemy without asyncio), in a
        transaction of its own; safe from any thread."""
        with self.begin() as connection:
            return self.publish_in(connection, event_type, data, id=id, timestamp=timestamp, account=account)

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction on the database: write your rows and ``publish_in`` them, then
        it commits when the block ends (rolls back if it raises). On SQLite it takes the write
        lock at once (``BEGIN IMMEDIATE``), so it never fails halfway for want of it."""
        connection = self.engine.connect().execution_options(**write_options())
        with connection, connection.begin():
            yield connection

    def _wake(self) -> None:
        """A transaction with new deliveries committed: tell this process's dispatcher."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.notices.deliveries_due)

    # --- the delivery log -------------------------------------------------------------------

    async def deliveries(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | str | None = None,
        limit: int = 100,
        account: str | None = None,
    ) -> list[DeliveryView]:
        """The account's deliveries, newest first, filtered by what is given. A ``webhook_id``
        of another account (or none) raises ``NotFound``."""
        statuses = None if status is None else [DeliveryStatus(status)]
        page = await self.service.queries.deliveries(
            account or self.account, endpoint_id=webhook_id, event_id=event_id, statuses=statuses, limit=limit
        )
        return [record.view for record in page.items]

    async def attempts(self, delivery_id: str, *, account: str | None = None) -> list[AttemptView]:
        """A delivery's attempts, oldest first: time, status or error, latency, the answer.
        A delivery of another account (or none) raises ``NotFound``."""
        record = await self.service.queries.delivery_record(account or self.account, delivery_id)
        return list(record.attempts)

    async def wait(
        self, published: PublishResult, timeout: float = 30.0, *, account: str | None = None
    ) -> list[DeliveryView]:
        """Wait until every delivery of a published event has succeeded or failed for good;
        its deliveries then. Raises TimeoutError after ``timeout`` seconds."""
        queries = self.service.queries
        async with asyncio.timeout(timeout):
            while True:
                views = [await queries.delivery(account or self.account, d) for d in published.delivery_ids]
                if all(not view.delivery.status.pending for view in views):
                    return views
                await asyncio.sleep(0.05)

    # --- delivering -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Dispatcher]:
        """Deliver on the running asyncio loop while the block runs; on leaving it, stop
        gracefully (attempts in flight finish or are handed back). Yields the dispatcher."""
        if self._loop is not None:
            raise RuntimeError("these webhooks are already delivering")
        stop = asyncio.Event()
        started: asyncio.Future[Dispatcher] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._deliver(stop, started))
        try:
            waiters: list[asyncio.Future[Any]] = [task, started]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # it failed to start: raise why
            self._loop = asyncio.get_running_loop()
            yield started.result()
        finally:
            self._loop = None
            stop.set()
            await task

    async def _deliver(self, stop: asyncio.Event, started: asyncio.Future[Dispatcher]) -> None:
        async with HttpTransport(self.egress) as transport:
            dispatcher = Dispatcher.beside(self.service, transport, HmacSigner(), self.dispatch)
            started.set_result(dispatcher)
            postgres = self.engine.dialect.name == "postgresql"
            wakeups = PostgresWakeups(self.engine.url) if postgres else None
            await deliver(dispatcher, self.notices, wakeups, stop)

    def run(self, stop: threading.Event | None = None) -> None:
        """Deliver until SIGINT or SIGTERM (in the main thread), or until ``stop`` is set; a
        blocking call for a process (or thread) that only delivers."""

        async def main() -> None:
            done = asyncio.Event()
            if threading.current_thread() is threading.main_thread():
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, done.set)
            async with self.running():
                while not done.is_set() and not (stop is not None and stop.is_set()):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), 0.1)

        asyncio.run(main())


def _checked(events: Iterable[NewEvent]) -> list[NewEvent]:
    """The events, each ``data`` checked against its type's schema (``InvalidPayload`` names
    every wrong field, as ``events[i].data.…`` in a batch)."""
    news = list(events)
    for index, new in enumerate(news):
        check_event_data(new.type, new.data, path="data" if len(news) == 1 else f"events[{index}].data")
    return news
