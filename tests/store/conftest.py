"""Tests of the SQL store beyond the port's contract: schema, codec, rebuild, concurrency, crashes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The backend helpers live beside the contract suite, which shares them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "contract"))

from sqlalchemy.engine import URL
from store_backends import fresh_postgres_database, migrated_postgres_database, pytest_pyfunc_call

__all__ = ["pytest_pyfunc_call"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'store.sqlite3'}"


@pytest.fixture
def empty_postgres_url() -> Iterator[URL]:
    """A fresh PostgreSQL database with no schema."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[URL]:
    """A fresh PostgreSQL database at the latest schema revision."""
    with migrated_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_url(request: pytest.FixtureRequest) -> str | URL:
    """Each SQL backend, migrated (SQLite migrates on open)."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
        return url
    migrated: URL = request.getfixturevalue("postgres_url")
    return migrated
