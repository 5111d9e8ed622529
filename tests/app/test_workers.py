"""``serve --workers N`` and ``worker --workers N``: several processes under one parent (issue 12).

Real processes against SQLite and PostgreSQL: every event is delivered exactly once, by both
processes between them; SIGTERM to the parent stops every child; a child that dies stops the
rest and the parent exits 1 with one line saying which.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_process import Process, cli, running, serve_command
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))

from store_backends import migrated_postgres_database

from attribution_webhooks.app.bootstrap import open_runtime
from attribution_webhooks.app.services import NewEvent
from attribution_webhooks.app.settings import Mode, Settings

DEAL = {"dealId": "d1", "amount": 5, "closedAt": "2024-01-20T15:00:00Z", "model": "linear", "attribution": []}
EVENTS = 40
ACCOUNT = "acct_workers"


class _SlowReceiver(http.server.BaseHTTPRequestHandler):
    """Answers 200 after 50 ms, so that one process alone cannot drain the queue in an instant."""

    received: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.05)
        self.server.received.append(json.loads(body)["id"])  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def _receiver() -> Iterator[tuple[str, list[str]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowReceiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def _settings(url: str) -> Settings:
    return Settings(database_url=url, mode=Mode.DEVELOPMENT)


def _register(url: str, receiver: str) -> None:
    runtime = open_runtime(_settings(url))
    try:
        runtime.keys.create_account(
            ACCOUNT, ACCOUNT, __import__("datetime").datetime.now(__import__("datetime").UTC)
        )
        asyncio.run(runtime.service.register_endpoint(ACCOUNT, receiver, ["deal.attributed"]))
    finally:
        runtime.close()


def _publish(url: str) -> list[str]:
    runtime = open_runtime(_settings(url))
    try:

        async def publish() -> list[str]:
            results = [
                await runtime.service.publish(ACCOUNT, NewEvent("deal.attributed", DEAL))
                for _ in range(EVENTS)
            ]
            return [r.event_id for r in results]

        return asyncio.run(publish())
    finally:
        runtime.close()


def _deliveries(url: str) -> list[tuple[str, int]]:
    """Each delivery's status and attempt count, and (last) how many attempts the log holds."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, attempts FROM deliveries")).all()
            attempts = conn.execute(text("SELECT count(*) FROM attempts")).scalar()
    finally:
        engine.dispose()
    return [(row[0], row[1]) for row in rows] + [("attempts logged", int(attempts or 0))]


def _wait(predicate: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _pids(process: Process, kind: str) -> list[int]:
    found = process.wait_for(rf"started 2 {kind} processes: pids (\d+), (\d+)")
    return [int(found.group(1)), int(found.group(2))]


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie (dead, waiting for whoever adopted it to reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return False


def _two_workers_deliver_each_event_once(url: str) -> None:
    with _receiver() as (receiver, received):
        _register(url, receiver)
        args = cli("worker", "--workers", "2", "--concurrency", "2", "--poll-interval", "100ms")
        args += ["--database-url", url, "--shutdown-grace", "2s"]
        with running(args, {"ATTRIBUTION_WEBHOOKS_MODE": "development"}) as worker:
            pids = _pids(worker, "worker")
            ready = {int(worker.wait_for(r"pid (\d+)\] started").group(1)) for _ in pids}
            assert ready == set(pids)
            published = _publish(url)
            _wait(lambda: len(received) >= EVENTS, f"{EVENTS} deliveries")
            _wait(lambda: all(s == "succeeded" for s, _ in _deliveries(url)[:-1]), "every outcome recorded")
            assert worker.stop(signal.SIGTERM) == 0
        delivered = {
            int(m.group(1)): int(m.group(2))
            for m in re.finditer(
                r"pid (\d+)\] stopped after \d+ attempts \((\d+) delivered\)", "".join(worker.output)
            )
        }
    assert sorted(received) == sorted(published)  # each event once: no duplicate, none missing
    assert _deliveries(url) == [("succeeded", 1)] * EVENTS + [("attempts logged", EVENTS)]
    assert set(delivered) == set(pids)
    assert sum(delivered.values()) == EVENTS
    assert all(count > 0 for count in delivered.values()), delivered  # both processes delivered
    assert all(_gone(pid) for pid in pids)


def test_two_worker_processes_deliver_each_event_once_on_sqlite(tmp_path: Path) -> None:
    """worker --workers 2 on one SQLite file: both processes deliver, each event exactly once."""
    _two_workers_deliver_each_event_once(f"sqlite:///{tmp_path / 'workers.sqlite3'}")


def test_two_worker_processes_deliver_each_event_once_on_postgres() -> None:
    """worker --workers 2 on PostgreSQL: both processes deliver, each event exactly once."""
    with migrated_postgres_database() as url:
        _two_workers_deliver_each_event_once(url.render_as_string(hide_password=False))


def test_serve_with_two_processes_answers_and_stops_them_all(tmp_path: Path) -> None:
    """serve --workers 2 answers HTTP on one port, with one banner and one first key; SIGTERM
    stops both processes and the parent exits 0."""
    with running(serve_command(tmp_path / "serve.sqlite3", "--workers", "2")) as serve:
        url = serve.wait_for(r"serving (http://\S+) .*2 processes").group(1)
        key = serve.wait_for(r"X-API-Key: (\S+)").group(1)
        pids = _pids(serve, "serve")
        answers = [httpx.get(f"{url}/webhooks", headers={"X-API-Key": key}, timeout=20) for _ in range(8)]
        assert [a.status_code for a in answers] == [200] * 8
        assert serve.stop(signal.SIGTERM) == 0
    output = "".join(serve.output)
    assert output.count("X-API-Key:") == 1
    assert all(f"pid {pid}] stopped" in output for pid in pids)
    assert all(_gone(pid) for pid in pids)


def test_a_parent_killed_with_sigkill_takes_its_children_and_frees_the_port(tmp_path: Path) -> None:
    """``kill -9`` of the parent (a crash, an OOM kill) leaves no child behind: they die with it
    (PR_SET_PDEATHSIG), so the service can start again on the same port at once."""
    database = tmp_path / "crash.sqlite3"
    with running(serve_command(database, "--workers", "2")) as serve:
        url = serve.wait_for(r"serving (http://\S+) .*2 processes").group(1)
        pids = _pids(serve, "serve")
        for _ in pids:
            serve.wait_for(r"\] started")
        serve.popen.send_signal(signal.SIGKILL)
        serve.popen.wait(10)
    # At once on Linux (the kernel kills them), within a poll elsewhere; the deadline bounds a hang.
    deadline = time.monotonic() + 15
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids)
    port = url.rsplit(":", 1)[1].strip("/")
    with running(serve_command(database, "--workers", "1", "--port", port)) as again:
        assert again.wait_for(r"serving (http://\S+)").group(1) == url


def test_a_child_that_dies_stops_the_others_and_the_parent_exits_1(tmp_path: Path) -> None:
    """A worker process killed from outside: the parent says so in one line, stops the other
    gracefully and exits 1 (its own supervisor restarts the whole)."""
    database = tmp_path / "dies.sqlite3"
    args = cli("worker", "--workers", "2", "--database-url", f"sqlite:///{database}")
    with running(args, {"ATTRIBUTION_WEBHOOKS_MODE": "development"}) as worker:
        first, second = _pids(worker, "worker")
        for _ in (first, second):
            worker.wait_for(r"\] started")
        os.kill(first, signal.SIGKILL)
        assert worker.popen.wait(30) == 1
    output = "".join(worker.output)
    errors = [line for line in output.splitlines() if "error:" in line]
    assert errors == [
        f"attribution-webhooks: error: worker-1 (pid {first}) was killed by SIGKILL; stopping the others"
    ]
    assert f"pid {second}] stopped after" in output
    assert _gone(second)


@pytest.mark.parametrize("value", ["0", "two"])
def test_a_bad_workers_value_is_one_line(tmp_path: Path, value: str) -> None:
    """--workers takes a whole number of at least 1; anything else is a one-line usage error."""
    with running(
        cli("worker", "--workers", value, "--database-url", f"sqlite:///{tmp_path / 'x.db'}")
    ) as worker:
        assert worker.popen.wait(30) == 2
    lines = "".join(worker.output).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("attribution-webhooks: error: --workers:"), lines
