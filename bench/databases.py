"""The databases a benchmark runs on: SQLite files in the run's folder, and scratch PostgreSQL
databases (``aw_bench_…``) that are dropped when the run ends.

A scenario that needs the same starting state every round builds it once as a template and
gives each round a copy: a file copy for SQLite, ``CREATE DATABASE … TEMPLATE`` for PostgreSQL.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import sqlite3
from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from attribution_webhooks.adapters.sql import upgrade

__all__ = ["Postgres", "SqliteFiles", "postgres_problem"]

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_problem(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used at ``admin_url``; None if it can."""
    try:
        engine = create_engine(admin_url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return None


class SqliteFiles:
    """SQLite database files in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def url(self, name: str) -> str:
        return f"sqlite:///{self.folder / f'{name}.sqlite3'}"

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.sqlite3"

    def fresh(self, name: str) -> str:
        """The URL of a file that does not exist yet (the store creates it)."""
        self.drop(name)
        return self.url(name)

    def copy(self, template: str, name: str) -> str:
        """A copy of ``template`` (closed by every writer) under ``name``."""
        source = self.path(template)
        with contextlib.closing(sqlite3.connect(source)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.drop(name)
        shutil.copyfile(source, self.path(name))
        return self.url(name)

    def drop(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            self.folder.joinpath(f"{name}.sqlite3{suffix}").unlink(missing_ok=True)


class Postgres:
    """Scratch databases on one PostgreSQL server; every one made here is dropped on ``close``."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._admin: Engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self._tag = secrets.token_hex(3)
        self._made: list[str] = []

    def __enter__(self) -> Postgres:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def url(self, name: str) -> str:
        database = f"aw_bench_{self._tag}_{name}"
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def _name(self, name: str) -> str:
        return f"aw_bench_{self._tag}_{name}"

    def fresh(self, name: str) -> str:
        """A new database at the latest schema revision."""
        self.drop(name)
        self._execute(f'CREATE DATABASE "{self._name(name)}"')
        self._made.append(name)
        url = self.url(name)
        upgrade(url)
        return url

    def copy(self, template: str, name: str) -> str:
        """A copy of ``template``, which nobody may be connected to."""
        self.drop(name)
        self._execute(f'CREATE DATABASE "{self._name(name)}" TEMPLATE "{self._name(template)}"')
        self._made.append(name)
        return self.url(name)

    def drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self._name(name)}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self._made.remove(name)

    def analyze(self, name: str) -> None:
        """``VACUUM ANALYZE``: what autovacuum would do after a bulk load, done now."""
        engine = create_engine(self.url(name), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text("VACUUM ANALYZE"))
        finally:
            engine.dispose()

    def server_version(self) -> str:
        with self._admin.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())

    def _execute(self, sql: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(sql))

    def close(self) -> None:
        for name in list(self._made):
            with contextlib.suppress(Exception):
                self.drop(name)
        self._admin.dispose()
