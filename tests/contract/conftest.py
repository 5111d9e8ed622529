"""Every storage backend behind one ``store`` fixture: the contract holds for each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from store_backends import (
    empty_postgres,
    migrated_postgres_database,
    migrated_sqlite_template,
    opened,
    pytest_pyfunc_call,
    sqlite_file,
)

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.core.ports import Storage

__all__ = ["pytest_pyfunc_call"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[URL]:
    with migrated_postgres_database() as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        with opened(sqlite_file(request.getfixturevalue("sqlite_template"), tmp_path)) as sql:
            yield sql
    else:
        url: URL = request.getfixturevalue("postgres_url")
        empty_postgres(url)
        with opened(url) as sql:
            yield sql
