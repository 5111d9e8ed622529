"""The crash chaos harness: publish N events through a real ``serve`` while SIGKILLing it and an
extra ``worker`` at random moments, to a local receiver that counts what arrives.

What it measures (``Figures``): events accepted and lost, deliveries received more than once
(duplicates), and the recovery time of each duplicate (from the kill that cut its first attempt
short to its re-send). What it checks (``Figures.problems``): nothing accepted is lost, every
delivery ends succeeded, a duplicate's re-sends carry new attempt numbers and its lost attempts
are logged as ``worker_lost``, and every duplicate's first receipt came shortly before a kill.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from attrs import define, field
from service_process import Process, cli
from sqlalchemy import create_engine, text

from attribution_webhooks.core.catalog import EventType
from attribution_webhooks.core.samples import SAMPLE_DATA

__all__ = ["ChaosRun", "Figures", "Receiver"]

#: A duplicate's first receipt must precede a kill by at most this (the outcome is recorded by the
#: next group commit, well within it, unless the process died first).
IN_FLIGHT_WINDOW = 5.0


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed sender resets its connections: expected here


class Receiver:
    """Answers 200 to every POST and remembers ``(delivery id, attempt, event id, time)``."""

    def __init__(self) -> None:
        self.receipts: list[tuple[str, int, str, float]] = []
        self._lock = threading.Lock()
        receipts, lock = self.receipts, self._lock

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                delivery = self.headers.get("X-Attribution-Delivery-Id", "")
                attempt = int(self.headers.get("X-Attribution-Attempt", "0"))
                with lock:
                    receipts.append((delivery, attempt, json.loads(body)["id"], time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self) -> list[tuple[str, int, str, float]]:
        with self._lock:
            return list(self.receipts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@define
class Figures:
    published: int
    accepted: int
    kills: int
    lost: list[str]
    not_succeeded: dict[str, int]
    duplicates: int
    repeated_numbers: list[str]
    unlogged_losses: list[str]
    not_in_flight_at_a_kill: list[str]
    recovery_seconds: list[float] = field(factory=list)

    def problems(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} accepted events never arrived: {self.lost[:5]}")
        if self.not_succeeded:
            found.append(f"deliveries not succeeded at the end: {self.not_succeeded}")
        if self.repeated_numbers:
            found.append(f"re-sends with an attempt number already sent: {self.repeated_numbers[:5]}")
        if self.unlogged_losses:
            found.append(f"duplicates whose lost attempt is not logged: {self.unlogged_losses[:5]}")
        if self.not_in_flight_at_a_kill:
            found.append(f"duplicates not explained by a kill: {self.not_in_flight_at_a_kill[:5]}")
        return found

    def summary(self) -> str:
        recovery = self.recovery_seconds
        spread = (
            f"median {statistics.median(recovery):.1f} s, max {max(recovery):.1f} s" if recovery else "none"
        )
        return (
            f"{self.kills} kills, {self.accepted}/{self.published} accepted, {len(self.lost)} lost, "
            f"{self.duplicates} duplicates, recovery {spread}"
        )


@define
class ChaosRun:
    """One run against ``database_url`` (already migrated, for PostgreSQL)."""

    database_url: str
    events: int
    kills: int
    seed: int = 0
    receiver: Receiver = field(factory=Receiver)
    port: int = field(factory=_free_port)
    key: str = ""
    serve: Process | None = None
    worker: Process | None = None
    kill_times: list[float] = field(factory=list)
    accepted: list[str] = field(factory=list)
    # Keep-alive between kills (a killed server's connections fail, and the next request reconnects).
    _client: httpx.Client = field(factory=lambda: httpx.Client(timeout=10))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _common(self) -> list[str]:
        return ["--database-url", self.database_url, "--mode", "development"]

    def _start_serve(self) -> None:
        self.serve = Process(
            cli("serve", *self._common(), "--port", str(self.port), "--shutdown-grace", "2s")
        )
        self.serve.wait_for(r"serving http://", timeout=60)

    def _start_worker(self) -> None:
        self.worker = Process(cli("worker", *self._common(), "--shutdown-grace", "2s"))

    def _kill(self, target: str) -> None:
        process = self.serve if target == "serve" else self.worker
        assert process is not None
        process.popen.kill()
        self.kill_times.append(time.time())
        process.popen.wait()
        (self._start_serve if target == "serve" else self._start_worker)()

    def _setup(self) -> None:
        created = subprocess.run(
            cli("api-keys", "create", "--name", "chaos", "--database-url", self.database_url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        self.key = created.stdout.strip().splitlines()[-1]
        self._start_serve()
        self._start_worker()
        hook = self._request("POST", "/webhooks", {"url": self.receiver.url, "events": ["deal.attributed"]})
        assert hook.status_code == 201, hook.text

    def _request(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        """Send until the server answers (it may be down, being killed or restarting)."""
        deadline = time.monotonic() + 120
        while True:
            try:
                response = self._client.request(
                    method, self.base + path, json=body, headers={"X-API-Key": self.key}
                )
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} got no answer within 120 s")
            time.sleep(0.05)

    def run(self, settle_timeout: float = 180.0) -> Figures:
        rng = random.Random(self.seed)
        kill_at = dict.fromkeys(sorted(rng.sample(range(1, self.events), self.kills)), None)
        try:
            self._setup()
            for number in range(self.events):
                if number in kill_at:
                    self._kill(rng.choice(["serve", "worker"]))
                event_id = f"evt_chaos_{number}"
                data = {**SAMPLE_DATA[EventType.DEAL_ATTRIBUTED], "dealId": f"deal_{number}"}
                body = {"id": event_id, "type": "deal.attributed", "data": data}
                answer = self._request("POST", "/events", body)
                assert answer.status_code in (200, 201, 202), answer.text
                self.accepted.append(event_id)
            self._settle(settle_timeout)
            return self._figures()
        finally:
            for process in (self.serve, self.worker):
                if process is not None and process.popen.poll() is None:
                    process.popen.kill()
                    process.popen.wait()
            self.receiver.close()
            self._client.close()

    def _statuses(self) -> dict[str, int]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT status, count(*) FROM deliveries GROUP BY status"))
                return {str(status): int(count) for status, count in rows}
        finally:
            engine.dispose()

    def _settle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        expected = set(self.accepted)
        while time.monotonic() < deadline:
            arrived = {event_id for _, _, event_id, _ in self.receiver.snapshot()}
            statuses = self._statuses()
            if expected <= arrived and set(statuses) == {"succeeded"}:
                return
            time.sleep(0.5)

    def _worker_lost(self) -> dict[str, int]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT delivery_id, count(*) FROM attempts WHERE error = 'worker_lost' GROUP BY delivery_id"
                    )
                )
                return {str(delivery): int(count) for delivery, count in rows}
        finally:
            engine.dispose()

    def _figures(self) -> Figures:
        receipts = self.receiver.snapshot()
        by_delivery: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for delivery, attempt, _, at in receipts:
            by_delivery[delivery].append((attempt, at))
        arrived = {event_id for _, _, event_id, _ in receipts}
        statuses = self._statuses()
        lost_logged = self._worker_lost()
        repeated, unlogged, unexplained, recovery = [], [], [], []
        duplicates = {d: sorted(r, key=lambda item: item[1]) for d, r in by_delivery.items() if len(r) > 1}
        for delivery, sends in duplicates.items():
            numbers = [attempt for attempt, _ in sends]
            if len(set(numbers)) != len(numbers):
                repeated.append(f"{delivery} {numbers}")
            if lost_logged.get(delivery, 0) < len(sends) - 1:
                unlogged.append(f"{delivery} sent {numbers}, {lost_logged.get(delivery, 0)} logged lost")
            first_at = sends[0][1]
            # A request written just before the kill may be read by the receiver just after it.
            kills = [k for k in self.kill_times if first_at - 1.0 <= k <= first_at + IN_FLIGHT_WINDOW]
            if not kills:
                offsets = ", ".join(f"{k - first_at:+.1f}" for k in self.kill_times)
                unexplained.append(
                    f"{delivery} sent {[(n, round(t - first_at, 2)) for n, t in sends]}; kills at {offsets}"
                )
            else:
                recovery.append(sends[1][1] - kills[0])
        return Figures(
            published=self.events,
            accepted=len(self.accepted),
            kills=len(self.kill_times),
            lost=sorted(set(self.accepted) - arrived),
            not_succeeded={s: n for s, n in statuses.items() if s != "succeeded"},
            duplicates=len(duplicates),
            repeated_numbers=repeated,
            unlogged_losses=unlogged,
            not_in_flight_at_a_kill=unexplained,
            recovery_seconds=recovery,
        )


def report(name: str, figures: Figures, say: Callable[[str], None] = print) -> None:
    say(f"crash chaos {name}: {figures.summary()}")
