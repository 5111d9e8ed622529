"""Our service as users run it, for the scenarios that go through ``POST /events``.

``attribution-webhooks serve`` (the API and a dispatcher in one process, ``app/runner.py``) is
started from the command line on a scratch database, with an API key made by
``attribution-webhooks api-keys create`` and endpoints registered through ``POST /webhooks``. The
load comes from ``bench.load`` in a process of its own.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from attribution_webhooks.adapters.sql import ApiKeyStore, open_store

from .clients import SECRET
from .engine import ACCOUNT, EVENT_TYPE, event_data
from .harness import Run
from .processes import ROOT, python

__all__ = [
    "Server",
    "batch_body",
    "disable",
    "load",
    "publish_body",
    "register",
    "start_hello",
    "start_serve",
]

CLI = [sys.executable, "-m", "attribution_webhooks.app.cli"]


@dataclass
class Server:
    """A server process we started, its base URL and (for ours) an API key."""

    name: str
    process: subprocess.Popen[Any]
    url: str
    key: str | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        found = [("Content-Type", "application/json")]
        return found + ([("X-API-Key", self.key)] if self.key else [])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_healthy(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited ({server.process.returncode}) before answering")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server.name} did not answer /healthz within {timeout:.0f} s")
        time.sleep(0.05)


def _create_key(db: str) -> str:
    """What ``attribution-webhooks api-keys create --account acct_bench`` does, without the cost
    of starting that command (it opens the store, so a new SQLite file gets its schema)."""
    store = open_store(db)
    try:
        keys = ApiKeyStore(store.engine)
        now = datetime.now(UTC)
        keys.create_account(ACCOUNT, ACCOUNT, now)
        _, key = keys.create_key(ACCOUNT, "bench", now)
        return key
    finally:
        store.close()


def start_serve(
    run: Run, name: str, db: str, *, per_endpoint: int = 8, retry_delays: str | None = None
) -> Server:
    """``attribution-webhooks serve`` in development mode on ``db``, answering on a free port."""
    key = _create_key(db)
    port = _free_port()
    argv = [*CLI, "serve", "--mode", "development", "--database-url", db, "--port", str(port)]
    argv += ["--concurrency", str(run.sizes.concurrency), "--per-endpoint-concurrency", str(per_endpoint)]
    argv += ["--log-level", "warning"]
    if retry_delays:
        argv += ["--retry-delays", retry_delays]
    server = Server(name, run.supervisor.start(name, argv), f"http://127.0.0.1:{port}", key)
    _wait_healthy(server)
    return server


def start_hello(run: Run, name: str) -> Server:
    """The Litestar hello world (``bench.hello``) on the same server settings."""
    port = _free_port()
    server = Server(name, run.supervisor.start(name, python("-m", "bench.hello", "--port", str(port))), "")
    server.url = f"http://127.0.0.1:{port}"
    _wait_healthy(server)
    return server


def register(server: Server, url: str) -> str:
    """Register an endpoint for the benchmark's event type through ``POST /webhooks``."""
    body = json.dumps({"url": url, "events": [EVENT_TYPE], "secret": SECRET}).encode()
    request = urllib.request.Request(
        server.url + "/webhooks", data=body, headers=dict(server.headers), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        created: dict[str, Any] = json.loads(answer.read())
    return str(created["id"])


def disable(server: Server, webhook_id: str) -> None:
    """``POST /webhooks/{id}/disable``: its deliveries are still created, and held."""
    request = urllib.request.Request(
        f"{server.url}/webhooks/{webhook_id}/disable", data=b"", headers=dict(server.headers), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def batch_body(size: int) -> bytes:
    """A ``POST /events/batch`` body: ``size`` of the ``publish_body`` events, without ids."""
    event = {"type": EVENT_TYPE, "data": event_data()}
    return json.dumps({"events": [event] * size}, separators=(",", ":")).encode()


def publish_body() -> bytes:
    """The ``POST /events`` body: a valid ``deal.attributed`` event of about 1 KB as delivered."""
    return json.dumps({"type": EVENT_TYPE, "data": event_data()}, separators=(",", ":")).encode()


def load(
    run: Run,
    name: str,
    url: str,
    body: bytes,
    headers: list[tuple[str, str]],
    *,
    concurrency: int,
    duration: float = 0.0,
    warmup: float = 0.0,
    count: int | None = None,
    rate: float | None = None,
) -> dict[str, Any]:
    """Run ``bench.load`` against ``url`` in its own process and return what it measured."""
    body_file = run.work / f"{name}.body"
    body_file.write_bytes(body)
    argv = python("-m", "bench.load", "--url", url, "--body-file", str(body_file), "--loop", run.loop)
    argv += ["--concurrency", str(concurrency)]
    if count is not None:
        argv += ["--count", str(count)]
        if rate is not None:
            argv += ["--rate", str(rate)]
    else:
        argv += ["--duration", str(duration), "--warmup", str(warmup)]
    for header, value in headers:
        argv += ["--header", f"{header}: {value}"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"bench.load failed: {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
