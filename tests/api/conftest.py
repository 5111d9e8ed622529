"""The API under Litestar's test client, over a real SQLite store (development mode unless a test
asks for production), with two accounts and a key each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import Api, accounts, runtime_for
from litestar.testing import TestClient

from attribution_webhooks.adapters.sql import open_store
from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.settings import Mode


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-template") / "template.sqlite3"
    open_store(f"sqlite:///{path}", inline=True).close()
    return path


@pytest.fixture
def apis(
    migrated_template: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Api, Api]]:
    """Alice and Bob, two accounts of one development-mode service."""
    mode = getattr(request, "param", Mode.DEVELOPMENT)
    runtime = runtime_for(migrated_template, tmp_path, mode)
    try:
        with TestClient(create_app(runtime)) as client:
            yield accounts(runtime, client)
    finally:
        runtime.close()


@pytest.fixture
def api(apis: tuple[Api, Api]) -> Api:
    """Alice's view of the service."""
    return apis[0]
