"""The schema: migrations match the models, run where and when they should, and ship with the package."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL

from attribution_webhooks.adapters.sql import SchemaNotCurrent, open_store, upgrade
from attribution_webhooks.adapters.sql.engine import create_engine
from attribution_webhooks.adapters.sql.migrate import (
    MIGRATIONS,
    current_revision,
    ensure_schema,
    head_revision,
)
from attribution_webhooks.adapters.sql.schema import metadata
from attribution_webhooks.adapters.sql.statements import postgres_statements, sqlite_statements
from attribution_webhooks.adapters.sql.times import postgres_times, sqlite_times


def test_migrations_create_exactly_the_models(sql_url: str | URL) -> None:
    """Alembic's autogenerate finds no difference between the migrated database and the models."""
    open_store(sql_url).close()
    engine = create_engine(sql_url)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def test_sqlite_migrates_itself_on_open_and_pragmas_hold(sqlite_url: str) -> None:
    """Opening a new SQLite file creates the schema at head, in WAL mode with synchronous=NORMAL."""
    store = open_store(sqlite_url)
    try:
        assert current_revision(store.engine) == head_revision()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        store.close()


def test_concurrent_first_opens_of_one_sqlite_file_both_succeed(sqlite_url: str) -> None:
    """Two processes' worth of engines opening a new file at once: one migrates, the other waits."""
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            engine = create_engine(sqlite_url)
            ensure_schema(engine)
            engine.dispose()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = create_engine(sqlite_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.postgres
def test_postgres_is_migrated_by_command_only(empty_postgres_url: URL) -> None:
    """A store refuses an un-migrated PostgreSQL database; ``upgrade`` (``db upgrade``) fixes that."""
    with pytest.raises(SchemaNotCurrent, match="db upgrade"):
        open_store(empty_postgres_url)
    assert upgrade(empty_postgres_url) == head_revision()
    assert upgrade(empty_postgres_url) == head_revision()  # nothing left to do
    open_store(empty_postgres_url).close()


def test_migrations_ship_inside_the_package() -> None:
    """Alembic's environment and revisions are package files, so an installed wheel can upgrade."""
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert list((MIGRATIONS / "versions").glob("*.py"))
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"migrations/versions/*.py"' in pyproject


def test_claim_reads_the_partial_index_of_pending_rows(sql_url: str | URL) -> None:
    """The claim statement's plan uses ix_deliveries_queue, the index that holds only pending deliveries."""
    store = open_store(sql_url)
    try:
        postgres = store.engine.dialect.name == "postgresql"
        statements = postgres_statements if postgres else sqlite_statements
        times = postgres_times if postgres else sqlite_times
        with store.engine.connect() as conn:
            if postgres:
                conn.execute(text("SET enable_seqscan = off"))
            explain = "EXPLAIN" if postgres else "EXPLAIN QUERY PLAN"
            now = times.to_db(datetime(2024, 1, 1, tzinfo=UTC))
            # PostgreSQL's claim also takes the lease's expiry and token (EXPLAIN does not run it).
            parameters = (now, 100, now, "lease") if postgres else (now, 100)
            plan = " ".join(
                str(row) for row in conn.exec_driver_sql(f"{explain} {statements.claim}", parameters)
            )
        assert "ix_deliveries_queue" in plan
        indexes = {ix["name"]: ix for ix in inspect(store.engine).get_indexes("deliveries")}
        assert "ix_deliveries_queue" in indexes
    finally:
        store.close()
