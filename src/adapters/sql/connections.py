"""DBAPI connections for the hot paths: one per thread, taken from the engine's pool once and held.

A pool checkout per call costs more than the statements of a small append (and on PostgreSQL
``pool_pre_ping`` adds a round trip to each), so each of the store's threads keeps its own
connection. What pre-ping did is done when it matters: a connection found dead when a
transaction or a read begins is replaced and the work tried once more; a connection that breaks
later is dropped, and the error raised. PostgreSQL connections run in autocommit mode, so a lone
read is one round trip, and transactions are opened explicitly (``statements.begin_*``); they
prepare their statements, with custom plans only (see ``_connection``).
Driver errors leave as SQLAlchemy's own wrappers (``sqlalchemy.exc.IntegrityError``…), as they
do from the cold paths.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

__all__ = ["Connections"]


class _Held(threading.local):
    generation: int = -1
    proxy: Any = None  # the pool's PoolProxiedConnection
    dbapi: Any = None  # the driver's connection inside it


class Connections:
    """The store's held connections (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dbapi: Any = engine.dialect.loaded_dbapi
        self._postgres = engine.dialect.name == "postgresql"
        self._held = _Held()
        self._all: list[Any] = []
        self._generation = 0  # raised by close(): connections held before it are not used again
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        """This thread's DBAPI connection."""
        held = self._held
        if held.generation == self._generation:
            return held.dbapi
        proxy = self._engine.raw_connection()
        connection: Any = proxy.dbapi_connection
        if self._postgres:
            connection.autocommit = True
            # Prepared statements save the hot statements their parsing (batches of inserts and
            # updates run 1.5-2x faster), and custom plans keep the reason the engine turns them
            # off from applying: every execution is planned with its own parameters and the
            # current statistics, never with a generic plan made while a table was small.
            connection.execute("SET plan_cache_mode = force_custom_plan")
            connection.prepare_threshold = 0
        with self._lock:
            self._all.append(proxy)
        held.generation, held.proxy, held.dbapi = self._generation, proxy, connection
        return connection

    def _drop(self) -> None:
        """Forget this thread's connection, broken: the pool discards it, the next call connects."""
        held = self._held
        proxy, held.generation, held.proxy, held.dbapi = held.proxy, -1, None, None
        if proxy is None:
            return
        with self._lock:
            if proxy in self._all:
                self._all.remove(proxy)
        proxy.invalidate()

    def _is_disconnect(self, error: BaseException, connection: Any) -> bool:
        return isinstance(error, self._dbapi.Error) and bool(
            self._engine.dialect.is_disconnect(error, connection, None)
        )

    def _wrap(self, error: Exception) -> Exception:
        if isinstance(error, self._dbapi.Error):
            wrapped: Exception = DBAPIError.instance(None, None, error, self._dbapi.Error)
            return wrapped
        return error

    @contextmanager
    def transaction(self, begin: str) -> Iterator[Any]:
        """A cursor inside a transaction opened by ``begin``: committed if the block ends
        normally, rolled back if it raises."""
        connection, cursor = self._begin(begin)
        try:
            yield cursor
            connection.commit()
        except Exception as error:
            if self._is_disconnect(error, connection):
                self._drop()
            else:
                self._abandon(connection)
            wrapped = self._wrap(error)
            if wrapped is not error:
                raise wrapped from error
            raise
        finally:
            cursor.close()

    def _begin(self, begin: str) -> tuple[Any, Any]:
        for attempt in (1, 2):
            connection = self._connection()
            cursor = connection.cursor()
            try:
                if self._postgres:  # several statements: psycopg cannot prepare them
                    cursor.execute(begin, prepare=False)
                else:
                    cursor.execute(begin)
                return connection, cursor
            except Exception as error:
                cursor.close()
                if self._is_disconnect(error, connection):
                    self._drop()
                    if attempt == 1:
                        continue
                else:
                    self._abandon(connection)  # a lock not granted after BEGIN, say
                raise self._wrap(error) from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _abandon(self, connection: Any) -> None:
        try:
            connection.rollback()
        except Exception:
            self._drop()

    def query(self, statement: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read statement, outside any transaction (one consistent snapshot)."""
        for attempt in (1, 2):
            connection = self._connection()
            cursor = connection.cursor()
            try:
                cursor.execute(statement, parameters)
                rows: list[Any] = cursor.fetchall()
                return rows
            except Exception as error:
                if self._is_disconnect(error, connection):
                    self._drop()
                    if attempt == 1:
                        continue
                raise self._wrap(error) from error
            finally:
                cursor.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Hand every held connection back to the pool (call it once the store's threads are idle)."""
        with self._lock:
            held, self._all = self._all, []
            self._generation += 1
        for proxy in held:
            try:
                connection: Any = proxy.dbapi_connection
                if self._postgres and connection is not None:
                    connection.execute("RESET plan_cache_mode")
                    connection.prepare_threshold = None
                    connection.autocommit = False
                proxy.close()
            except Exception:
                proxy.invalidate()
