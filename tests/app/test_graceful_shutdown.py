"""SIGTERM while a delivery is in flight: the process exits 0 and leaves nothing leased.

The receiver hangs, so the attempt is still running when the signal comes; the grace period (1 s)
runs out, the attempt is cut short and logged as abandoned (the receiver may have it), and its
delivery is due again at once, as attempt 2 (ADR 0014).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_process import cli, leased_count, running, serve_command

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from receivers.scripted import ScriptedServer

DEAL = (
    '{"dealId": "d1", "amount": 5, "closedAt": "2024-01-20T15:00:00Z", "model": "linear", "attribution": []}'
)


def _wait_for_request(server: ScriptedServer, path: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not server.requests(path):
        assert time.monotonic() < deadline, "the delivery never reached the receiver"
        time.sleep(0.05)


def _pending(database: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT status, attempts FROM deliveries").fetchall()


def _lost(database: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT attempt, error, detail FROM attempts").fetchall()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_gracefully_mid_delivery(tmp_path: Path, sig: int) -> None:
    """serve, signalled during a hanging delivery, exits 0 within the grace period; nothing is leased."""
    database = tmp_path / "serve.sqlite3"
    args = serve_command(database, "--shutdown-grace", "1s", "--request-timeout", "60s")
    with ScriptedServer.running() as receiver, running(args) as process:
        url = process.wait_for(r"serving (http://\S+)").group(1)
        key = process.wait_for(r"X-API-Key: (\S+)").group(1)
        headers = {"X-API-Key": key}
        httpx.post(
            f"{url}/webhooks",
            json={"url": receiver.url("/hang"), "events": ["deal.attributed"]},
            headers=headers,
        )
        httpx.post(
            f"{url}/events", content='{"type": "deal.attributed", "data": ' + DEAL + "}", headers=headers
        )
        _wait_for_request(receiver, "/hang")
        started = time.monotonic()
        assert process.stop(sig) == 0
        assert time.monotonic() - started < 30  # the 1 s grace, not the 60 s request timeout
    assert leased_count(database) == 0
    assert _pending(database) == [("scheduled", 1)]  # attempt 1 cut short, due again
    assert _lost(database) == [(1, "worker_lost", "outcome unknown (worker stopped while it ran)")]


def test_worker_delivers_work_of_another_process_and_stops_gracefully(tmp_path: Path) -> None:
    """A worker finds an event published by another process (the CLI) by polling, and on SIGTERM
    mid-delivery exits 0 leaving nothing leased."""
    database = tmp_path / "worker.sqlite3"
    db = ["--database-url", f"sqlite:///{database}"]
    env = {"ATTRIBUTION_WEBHOOKS_MODE": "development"}
    subprocess.run(cli("api-keys", "create", "--account", "acct_w", *db), check=True, capture_output=True)
    with ScriptedServer.running() as receiver:
        import asyncio

        from attribution_webhooks.app.bootstrap import open_runtime
        from attribution_webhooks.app.settings import Mode, Settings

        runtime = open_runtime(Settings(database_url=f"sqlite:///{database}", mode=Mode.DEVELOPMENT))
        try:
            asyncio.run(
                runtime.service.register_endpoint("acct_w", receiver.url("/hang"), ["deal.attributed"])
            )
        finally:
            runtime.close()
        worker_args = cli("worker", *db, "--shutdown-grace", "1s", "--poll-interval", "100ms")
        with running(worker_args, env) as worker:
            worker.wait_for(r"worker on")
            published = subprocess.run(
                cli("events", "publish", "--type", "deal.attributed", "--data", DEAL, *db),
                capture_output=True,
                text=True,
                check=True,
                env={**__import__("os").environ, **env},
            )
            assert "to 1 webhook" in published.stdout
            _wait_for_request(receiver, "/hang")
            assert worker.stop() == 0
            worker.wait_for(r"stopped after")
    assert leased_count(database) == 0
