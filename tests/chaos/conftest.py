"""Crash chaos: real ``serve`` and ``worker`` processes killed with SIGKILL while events are
published, on SQLite and on PostgreSQL (issue 10.8)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The process helpers live beside the end-to-end tests, the PostgreSQL ones beside the contract suite.
_TESTS = Path(__file__).resolve().parents[1]
for _helpers in (_TESTS / "app", _TESTS / "contract"):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

from store_backends import migrated_postgres_database  # noqa: E402 (needs the path above)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database for the processes under test: a new SQLite file, or a new migrated PostgreSQL one."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chaos.sqlite3'}"
        return
    with migrated_postgres_database() as url:
        yield url.render_as_string(hide_password=False)
