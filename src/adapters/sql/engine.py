"""Engines for the two backends: SQLite embedded (the default) and PostgreSQL for scale-out.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (a commit survives a process crash; an OS
crash may lose the last few, never corrupt the file) and a busy timeout, so that several
processes can share one file. Write transactions start with ``BEGIN IMMEDIATE``: a writer takes
the write lock up front instead of upgrading a read lock later, which is what deadlocks two
processes that both read, then try to write.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as _create_engine
from sqlalchemy.engine import URL, make_url

__all__ = [
    "DEFAULT_URL",
    "BUSY_TIMEOUT_MS",
    "create_engine",
    "is_sqlite",
    "normalise_url",
    "write_options",
]

#: Where the service keeps its state unless told otherwise: a SQLite file in the working directory.
DEFAULT_URL = "sqlite:///attribution-webhooks.sqlite3"

BUSY_TIMEOUT_MS = 30_000

_WRITE = "attribution_webhooks_write"


def normalise_url(url: str | URL) -> URL:
    """``postgresql://…`` and ``postgres://…`` mean the psycopg 3 driver, the one we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


def write_options() -> dict[str, Any]:
    """Execution options of a connection about to open a write transaction."""
    return {_WRITE: True}


def create_engine(url: str | URL, *, pool_size: int = 4, echo: bool = False) -> Engine:
    """An engine for ``url``: a SQLite file (``sqlite:///path``) or PostgreSQL (``postgresql+psycopg://``)."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(
                "give the SQLite store a file (sqlite:///path): an in-memory one is per connection"
            )
        engine = _create_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        # No server-side prepared statements: psycopg prepares a statement after 5 runs, and a
        # generic plan made while a table was small keeps scanning it once it is large (seen in
        # the benchmark: 100 ms per append instead of 1 ms until the next ANALYZE). The store's
        # hot paths do prepare, on their own connections, with custom plans only (connections.py).
        return _create_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            pool_pre_ping=True,
            connect_args={"prepare_threshold": None},
        )
    raise ValueError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://"
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: transactions are begun by _sqlite_begin, not by pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        _enter_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten, not left in free pages: a destroyed secret key must not
        # be recoverable from the file (ADR 0010).
        cursor.execute("PRAGMA secure_delete=ON")
    finally:
        cursor.close()


def _enter_wal(cursor: Any) -> None:
    """Switch the file to WAL mode (it stays so once set). Switching takes an exclusive lock and
    SQLite answers "database is locked" at once, without its busy handler, while another
    connection holds the file: seen when several processes open a new file together. So wait
    and try again, within the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError("could not switch the SQLite file to WAL mode")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
