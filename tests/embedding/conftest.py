"""The embedding facade, the transactional outbox and the Attribution API example.

The example (``examples/attribution_api``) is imported from the source tree, as its README
runs it; the receivers and the PostgreSQL helpers are the other suites' own."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The receivers and PostgreSQL helpers of the other suites, and the example, on the path first.
ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "contract"))
sys.path.insert(0, str(ROOT / "examples"))

from sqlalchemy.engine import URL  # noqa: E402
from store_backends import migrated_postgres_database, pytest_pyfunc_call  # noqa: E402

__all__ = ["pytest_pyfunc_call"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | URL]:
    """Each SQL backend: a SQLite file that does not exist yet, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.sqlite3'}"
    else:
        with migrated_postgres_database() as url:
            yield url
