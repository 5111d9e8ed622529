"""A real ``serve`` with JSON logs: publish → a failed attempt and its retry → rotate the secret →
deliver again, a disabled webhook holding a delivery; then ``/metrics`` is scraped and its
families checked against what happened, ``/readyz`` reports the worker, and the whole output is
searched for every secret, key and URL token the run handled: none may appear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from service_process import running, serve_command

SESSION_SECRET = "session-secret-Zq8Lr2Vt5Nw3Hc9Kp0Xs"
URL_TOKEN = "url-token-Jm4Qd7Rb1Gy6Wf3Tn8Pa"
MASTER_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()  # encrypts webhook secrets at rest


class Receiver:
    """A local receiver answering 500 to its first request and 200 to the rest; it keeps
    every request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(500 if len(receiver.requests) == 1 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token={URL_TOKEN}"

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"the receiver got {len(self.requests)} of {count} requests"
            time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def settled(client: httpx.Client, delivery_id: str, status: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        delivery: dict[str, Any] = client.get(f"/deliveries/{delivery_id}").json()
        if delivery["status"] == status:
            return delivery
        assert time.monotonic() < deadline, delivery
        time.sleep(0.1)


def test_a_full_run_is_measured_and_logged_without_a_secret(tmp_path: Path, receiver: Receiver) -> None:
    args = serve_command(tmp_path / "o.sqlite3", "--log-format", "json", "--retry-delays", "1s,1s")
    with running(
        args,
        env={
            "ATTRIBUTION_WEBHOOKS_SESSION_SECRET": SESSION_SECRET,
            "ATTRIBUTION_WEBHOOKS_SECRET_KEYS": MASTER_KEY,
        },
    ) as process:
        url = process.wait_for(r"serving (http://\S+)").group(1)
        key = process.wait_for(r"X-API-Key: (\S+)").group(1)
        with httpx.Client(base_url=url, headers={"X-API-Key": key}) as client:
            hook = client.post("/webhooks", json={"url": receiver.url, "events": ["partner.created"]}).json()
            other = client.post(
                "/webhooks", json={"url": receiver.url, "events": ["deal.attributed", "partner.created"]}
            ).json()
            assert client.post(f"/webhooks/{other['id']}/disable").status_code == 200
            data = {"id": "partner_abc", "name": "Acme Corp", "type": "referral", "status": "active"}
            first = client.post("/events", json={"type": "partner.created", "data": data}).json()
            [to_hook] = [
                d
                for d in first["deliveryIds"]
                if client.get(f"/deliveries/{d}").json()["webhookId"] == hook["id"]
            ]
            delivered = settled(client, to_hook, "succeeded")
            assert [a["statusCode"] for a in delivered["attempts"]] == [500, 200]

            rotated = client.post(f"/webhooks/{hook['id']}/rotate-secret").json()
            second = client.post("/events", json={"type": "partner.created", "data": data}).json()
            for delivery_id in second["deliveryIds"]:
                if client.get(f"/deliveries/{delivery_id}").json()["webhookId"] == hook["id"]:
                    settled(client, delivery_id, "succeeded")
            receiver.wait_for(3)
            headers, body = receiver.requests[2]
            expected = hmac.new(rotated["secret"].encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Attribution-Signature"] == expected  # signed with the new secret

            assert client.get("/no-such-route").status_code == 404
            ready = httpx.get(f"{url}/readyz")
            assert ready.json() == {"status": "ready"}, ready.text
            scrape = httpx.get(f"{url}/metrics")  # no key: scrapers do not authenticate
        assert process.stop() == 0

    assert scrape.status_code == 200
    content_type = scrape.headers["content-type"]
    assert content_type.startswith("text/plain; version="), content_type
    assert content_type.count("charset=utf-8") == 1, content_type
    got = samples(scrape.text)

    def value(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert value("webhooks_attempts_total", outcome="succeeded", error_class="") == 2
    assert value("webhooks_attempts_total", outcome="failed", error_class="http_5xx") == 1
    assert value("webhooks_deliveries_total", outcome="succeeded") == 2
    assert value("webhooks_attempt_duration_seconds_count", outcome="succeeded") == 2
    assert value("webhooks_attempt_duration_seconds_count", outcome="failed") == 1
    assert value("webhooks_queue_pending") == 0
    assert value("webhooks_queue_due") == 0
    assert value("webhooks_queue_oldest_due_age_seconds") == 0
    assert value("webhooks_deliveries_held") == 2  # one per event, for the disabled webhook
    assert value("webhooks_endpoints_disabled") == 1
    assert value("webhooks_database_up") == 1
    assert 0 <= value("webhooks_worker_loop_age_seconds") < 10
    requests = "webhooks_http_requests_total"
    assert value(requests, method="POST", route="/events", status="202") == 2
    assert value(requests, method="POST", route="/webhooks/{webhook_id}/rotate-secret", status="200") == 1
    assert value(requests, method="GET", route="/deliveries/{delivery_id}", status="200") >= 4
    assert value(requests, method="GET", route="unmatched", status="404") == 1
    assert value(requests, method="GET", route="/readyz", status="200") == 1
    routes = {dict(labels)["route"] for name, labels in got if name == requests}
    assert not any(hook["id"] in route or "dlv_" in route for route in routes), routes

    output = process.output
    records = [json.loads(line) for line in output if line.startswith("{")]
    attempts = [r for r in records if r["logger"] == "attribution_webhooks.attempts"]
    assert [(r["attempt"], r["outcome"], r["status_code"], r["error_class"]) for r in attempts] == [
        (1, "failed", 500, "http_5xx"),
        (2, "succeeded", 200, None),
        (1, "succeeded", 200, None),
    ]
    assert {r["endpoint_id"] for r in attempts} == {hook["id"]}
    assert [r["event_id"] for r in attempts] == [first["id"], first["id"], second["id"]]
    assert attempts[0]["delivery_id"] == to_hook
    assert all(r["latency_ms"] > 0 and r["level"] == "info" for r in attempts)
    # Every line is a JSON record but serve's own announcements on stdout.
    plain = [line for line in output if not line.startswith("{")]
    announcements = (
        "attribution-webhooks ",
        "API docs:",
        "Dashboard:",
        "First start:",
        "  X-API-Key:",
        "stop",
    )
    assert [line for line in plain if not line.startswith(announcements)] == []

    secrets = [hook["secret"], other["secret"], rotated["secret"], SESSION_SECRET, URL_TOKEN, MASTER_KEY, key]
    shown_key = [line for line in output if key in line]
    assert shown_key == [f"  X-API-Key: {key}\n"]  # printed once on stdout at the first start, never logged
    for secret in secrets:
        leaks = [line for line in output if secret in line and line not in shown_key]
        assert leaks == [], f"{secret[:6]}… appears in the output"
