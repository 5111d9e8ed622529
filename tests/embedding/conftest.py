"""The embedding facade, the transactional outbox and the Attribution API example.

The example (``examples/attribution_api``) is imported from the source tree, as its README
runs it; the receivers and the PostgreSQL helpers are the other suites' own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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

__all__ = ["SpecReceiver", "pytest_pyfunc_call", "spec_receiver"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | URL]:
    """Each SQL backend: a SQLite file that does not exist yet, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.sqlite3'}"
    else:
        with migrated_postgres_database() as url:
            yield url


class SpecReceiver:
    """One of the spec's receivers (``tests/receivers/spec_receiver.{py,js}``), in a process."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/attribution"

    def stats(self) -> dict[str, object]:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as answer:
            stats: dict[str, object] = json.loads(answer.read())
            return stats


@contextmanager
def spec_receiver(language: str, secret: str) -> Iterator[SpecReceiver]:
    """The spec's Python (``python``) or Node.js (``node``) receiver, verifying with ``secret``."""
    if language == "node":
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed")
        command = [node, str(TESTS / "receivers" / "spec_receiver.js"), secret]
    else:
        command = [sys.executable, str(TESTS / "receivers" / "spec_receiver.py"), secret]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(json.loads(process.stdout.readline())["port"])
        yield SpecReceiver(process, port)
    finally:
        process.terminate()
        process.wait(timeout=10)
