"""The API under Litestar's test client, over a real SQLite store (development mode unless a test
asks for production), with two accounts and a key each."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_helpers import Api
from litestar.testing import TestClient

from attribution_webhooks.adapters.crypto import generate_master_key
from attribution_webhooks.adapters.sql import open_store
from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.bootstrap import Runtime, open_runtime
from attribution_webhooks.app.settings import Mode, Settings


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-template") / "template.sqlite3"
    open_store(f"sqlite:///{path}", inline=True).close()
    return path


def _runtime(template: Path, directory: Path, mode: Mode) -> Runtime:
    target = directory / "api.sqlite3"
    shutil.copyfile(template, target)
    # Production mode requires the master key of webhook secrets; development makes its own.
    keys = generate_master_key() if mode is Mode.PRODUCTION else None
    settings = Settings(
        database_url=f"sqlite:///{target}", mode=mode, max_body_size=64 * 1024, secret_keys=keys
    )
    return open_runtime(settings)


def _accounts(runtime: Runtime, client: TestClient[Any]) -> tuple[Api, Api]:
    now = datetime.now(UTC)
    apis = []
    for account in ("acct_alice", "acct_bob"):
        runtime.keys.create_account(account, account, now)
        _, key = runtime.keys.create_key(account, "tests", now)
        apis.append(Api(client, runtime, account, key))
    return apis[0], apis[1]


@pytest.fixture
def apis(
    migrated_template: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Api, Api]]:
    """Alice and Bob, two accounts of one development-mode service."""
    mode = getattr(request, "param", Mode.DEVELOPMENT)
    runtime = _runtime(migrated_template, tmp_path, mode)
    try:
        with TestClient(create_app(runtime)) as client:
            yield _accounts(runtime, client)
    finally:
        runtime.close()


@pytest.fixture
def api(apis: tuple[Api, Api]) -> Api:
    """Alice's view of the service."""
    return apis[0]
