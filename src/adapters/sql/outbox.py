"""The transactional outbox: publishing inside a transaction that the embedding service opened.

A service that embeds the package writes its own rows (a deal, a partner) and publishes the
webhook event about them in one database transaction: if it rolls back, nothing is delivered;
if it commits, the deliveries are in the queue, and some dispatcher (this process's, or any
other's on the same database) sends them. ``SqlOutbox`` is the store seen through the caller's
SQLAlchemy ``Connection`` (or ``Session``): the same appender and projection as every other
append (``appending.py``), on the caller's DBAPI connection, without a transaction of its own.

Waking dispatchers: on PostgreSQL a ``NOTIFY`` is sent inside the transaction, which the server
delivers only if, and once, it commits, to every listening process (``wakeups.py``). In every
case ``on_commit`` is called when the caller commits (SQLAlchemy's ``commit`` event, raised just
before the driver's commit): this process's dispatcher is told at once; on SQLite its claim
waits for the caller's write lock, so it sees the commit. A wake-up that never comes (a crash
right after the commit) costs the poll interval, never a delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, event, select
from sqlalchemy.engine import URL

from ...core.ports import StreamAppend
from ...core.views import EndpointView, EventView
from .appending import Appender
from .rows import event_view
from .schema import deliveries, published_events
from .wakeups import _DUE, CHANNEL

if TYPE_CHECKING:  # imported for its type only: sqlalchemy.orm is not needed otherwise
    from sqlalchemy.orm import Session

__all__ = ["SqlOutbox", "Transaction", "connection_of"]

#: A caller's open transaction: a Connection, or an ORM Session (whose connection it uses).
Transaction: TypeAlias = "Connection | Session"

_DRIVERS = ("pysqlite", "psycopg")

# Callbacks to run when a connection's transaction commits; dropped when it rolls back.
_pending: WeakKeyDictionary[Connection, list[Callable[[], None]]] = WeakKeyDictionary()


def connection_of(transaction: Transaction) -> Connection:
    """The ``Connection`` of a transaction given as a Connection or an ORM ``Session`` (whose
    connection for the current transaction is taken, beginning the transaction if need be)."""
    if isinstance(transaction, Connection):
        return transaction
    connection = getattr(transaction, "connection", None)
    if not callable(connection):
        raise TypeError(
            f"publish within a SQLAlchemy Connection or Session, not {type(transaction).__name__}"
        )
    found = connection()
    if not isinstance(found, Connection):
        raise TypeError(f"{type(transaction).__name__}.connection() did not return a Connection")
    return found


class SqlOutbox:
    """The store inside the caller's open transaction (see the module's docstring).

    Build it with ``SqlStore.within``. Not thread-safe: one per transaction, on its thread."""

    def __init__(
        self,
        appender: Appender,
        endpoint_views: Callable[[Sequence[Any]], list[EndpointView]],
        transaction: Transaction,
        store_url: URL,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        connection = connection_of(transaction)
        _check_connection(connection, appender.sql.sqlite, store_url)
        if not connection.in_transaction():
            connection.begin()  # as SQLAlchemy's autobegin would on the first statement
        self._connection = connection
        self._appender = appender
        self._endpoint_views = endpoint_views
        self._on_commit = on_commit

    def _cursor(self) -> Any:
        return self._connection.connection.cursor()

    def subscribers(self, account_id: str, event_type: str) -> list[EndpointView]:
        """As ``EndpointDirectory.subscribers``, read inside the transaction."""
        cursor = self._cursor()
        try:
            cursor.execute(self._appender.sql.subscribers, (account_id,))
            views = self._endpoint_views(cursor.fetchall())
        finally:
            cursor.close()
        return [view for view in views if event_type in view.endpoint.event_types]

    def event(self, account_id: str, event_id: str) -> EventView | None:
        """As ``DeliveryLog.event``, read inside the transaction."""
        query = select(published_events).where(
            published_events.c.account_id == account_id, published_events.c.event_id == event_id
        )
        row = self._connection.execute(query).first()
        return None if row is None else event_view(row)

    def delivery_ids(self, account_id: str, event_id: str) -> list[str]:
        """The ids of the event's deliveries, in id order."""
        query = (
            select(deliveries.c.delivery_id)
            .where(deliveries.c.account_id == account_id, deliveries.c.event_id == event_id)
            .order_by(deliveries.c.delivery_id)
        )
        return list(self._connection.execute(query).scalars())

    def append(self, *appends: StreamAppend) -> int:
        """As ``EventStore.append``, inside the transaction: visible to others once it commits,
        gone if it rolls back. Raises ``ConcurrencyConflict`` having written nothing."""
        cursor = self._cursor()
        try:
            return self._appender.append_within(cursor, appends)
        finally:
            cursor.close()

    def deliveries_due(self) -> None:
        """Deliveries become due when the transaction commits: wake the dispatchers then."""
        if not self._appender.sql.sqlite:
            self._connection.exec_driver_sql("SELECT pg_notify(%s, %s)", (CHANNEL, _DUE))
        if self._on_commit is not None:
            when_committed(self._connection, self._on_commit)


def when_committed(connection: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` when ``connection``'s transaction commits (once, however many times it
    is asked for in that transaction); forget it if the transaction rolls back."""
    pending = _pending.get(connection)
    if pending is None:
        pending = _pending[connection] = []
        event.listen(connection, "commit", _committed)
        event.listen(connection, "rollback", _rolled_back)
    if callback not in pending:
        pending.append(callback)


def _committed(connection: Connection) -> None:
    callbacks = _pending.get(connection)
    if callbacks:
        done, callbacks[:] = list(callbacks), []
        for callback in done:
            callback()


def _rolled_back(connection: Connection) -> None:
    callbacks = _pending.get(connection)
    if callbacks:
        callbacks.clear()


def _check_connection(connection: Connection, sqlite: bool, store_url: URL) -> None:
    dialect = connection.dialect
    if dialect.driver not in _DRIVERS:
        raise ValueError(
            f"publishing within a transaction needs the sqlite3 or psycopg driver, not {dialect.driver}"
        )
    if (dialect.name == "sqlite") != sqlite or _database(connection.engine.url) != _database(store_url):
        raise ValueError("the transaction is on another database than the webhooks' store")
    level = connection.get_execution_options().get("isolation_level") or connection.default_isolation_level
    if level == "AUTOCOMMIT":
        raise ValueError("the connection is in autocommit mode: publish within a transaction")
    if not sqlite and level != "READ COMMITTED":
        # The append lock orders appends; a snapshot taken before it was granted would miss
        # the last position written and the streams' current versions.
        raise ValueError(f"publish within a READ COMMITTED transaction (PostgreSQL's default), not {level}")


def _database(url: URL) -> tuple[object, ...]:
    """What names a database in a URL (not the driver's options, the user or the password)."""
    return (url.get_backend_name(), url.host, url.port, url.database)
