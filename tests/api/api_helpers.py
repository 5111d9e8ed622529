"""Helpers of the API tests: an account's client, and what a problem+json answer must hold."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attrs import frozen
from litestar.testing import TestClient

from attribution_webhooks.adapters.crypto import generate_master_key
from attribution_webhooks.app.bootstrap import Runtime, open_runtime
from attribution_webhooks.app.settings import Mode, Settings
from attribution_webhooks.core.samples import SAMPLE_DATA

__all__ = ["DEAL", "SECRET", "Api", "accounts", "assert_problem", "runtime_for"]

SECRET = "your_webhook_secret"
DEAL: dict[str, Any] = dict(SAMPLE_DATA["deal.attributed"])


@frozen
class Api:
    """A test client with the headers of one account's key."""

    client: TestClient[Any]
    runtime: Runtime
    account: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.post(path, json=json, headers=self.headers, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.put(path, json=json, headers=self.headers, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.patch(path, json=json, headers=self.headers, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.client.delete(path, headers=self.headers, **kwargs)

    def register(
        self, url: str = "https://receiver.example/hooks", events: Any = ("deal.attributed",)
    ) -> Any:
        response = self.post("/webhooks", {"url": url, "events": list(events), "secret": SECRET})
        assert response.status_code == 201, response.text
        return response.json()

    def log_size(self) -> int:
        """How many events the store holds: what a rejected request must not change."""
        with self.runtime.store.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one())


def assert_problem(response: Any, status: int, *fragments: str) -> dict[str, Any]:
    """The response is problem+json with ``status`` and a detail containing every fragment."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


def runtime_for(template: Path, directory: Path, mode: Mode) -> Runtime:
    """A service over a copy of the migrated SQLite ``template`` in ``directory``."""
    target = directory / "api.sqlite3"
    shutil.copyfile(template, target)
    # Production mode requires the master key of webhook secrets; development makes its own.
    keys = generate_master_key() if mode is Mode.PRODUCTION else None
    settings = Settings(
        database_url=f"sqlite:///{target}", mode=mode, max_body_size=64 * 1024, secret_keys=keys
    )
    return open_runtime(settings)


def accounts(runtime: Runtime, client: TestClient[Any]) -> tuple[Api, Api]:
    """Alice and Bob: two accounts with a key each."""
    now = datetime.now(UTC)
    apis = []
    for account in ("acct_alice", "acct_bob"):
        runtime.keys.create_account(account, account, now)
        _, key = runtime.keys.create_key(account, "tests", now)
        apis.append(Api(client, runtime, account, key))
    return apis[0], apis[1]
