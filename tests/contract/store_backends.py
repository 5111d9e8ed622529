"""The storage backends the tests run against, and what they need: fresh PostgreSQL databases,
SQLite files, and running ``async def`` tests (without an async test plugin).

Shared by ``tests/contract`` and ``tests/store`` (whose conftest puts this folder on the path).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from attribution_webhooks.adapters.sql import SqlStore, ensure_schema, open_store
from attribution_webhooks.adapters.sql.engine import create_engine as create_store_engine
from attribution_webhooks.adapters.sql.schema import (
    READ_MODELS,
    endpoint_gates,
    events,
    purged_events,
    secret_keys,
)

#: Set in CI: PostgreSQL tests fail instead of skipping when the server is unreachable.
REQUIRE_POSTGRES = os.environ.get("ATTRIBUTION_WEBHOOKS_REQUIRE_POSTGRES") == "1"
#: A database on the server to connect to while creating and dropping the test databases.
POSTGRES_ADMIN_URL = os.environ.get(
    "ATTRIBUTION_WEBHOOKS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests on a fresh asyncio loop each (a conftest re-exports this hook)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**arguments))
    return True


def _postgres_unreachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def require_postgres() -> None:
    """Skip the test if PostgreSQL is unreachable, or fail it when CI requires PostgreSQL."""
    problem = _postgres_unreachable()
    if problem is None:
        return
    message = f"PostgreSQL at {make_url(POSTGRES_ADMIN_URL).render_as_string()} is unreachable ({problem})"
    if REQUIRE_POSTGRES:
        pytest.fail(message + " and ATTRIBUTION_WEBHOOKS_REQUIRE_POSTGRES=1", pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_postgres_database() -> Iterator[URL]:
    """A new, empty database (``aw_test_…``), dropped afterwards."""
    require_postgres()
    name = f"aw_test_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(POSTGRES_ADMIN_URL).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def migrated_postgres_database() -> Iterator[URL]:
    """A fresh database at the latest schema revision."""
    with fresh_postgres_database() as url:
        engine = create_store_engine(url, pool_size=1)
        ensure_schema(engine)
        engine.dispose()
        yield url


def empty_postgres(url: URL) -> None:
    """Delete every row (cheaper than a new database per test)."""
    engine = create_store_engine(url, pool_size=1)
    names = ", ".join(
        table.name for table in (*READ_MODELS, events, secret_keys, purged_events, endpoint_gates)
    )
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names}"))
    engine.dispose()


def sqlite_file(template: Path, directory: Path) -> str:
    """A copy of a migrated SQLite file (migrating each test's own file costs more)."""
    target = directory / "store.sqlite3"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def migrated_sqlite_template(directory: Path) -> Path:
    path = directory / "template.sqlite3"
    open_store(f"sqlite:///{path}", inline=True).close()
    return path


@contextmanager
def opened(url: str | URL, **options: Any) -> Iterator[SqlStore]:
    store = open_store(url, **options)
    try:
        yield store
    finally:
        store.close()


def database_bytes(url: str | URL) -> bytes:
    """Everything the database holds as an attacker would read it: SQLite's file with its
    write-ahead log and shared memory; PostgreSQL's dump (pg_dump)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        parts = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        return b"".join(part.read_bytes() for part in parts if part.exists())
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(["pg_dump", "--no-owner", dsn], check=True, capture_output=True).stdout
