"""End to end against receivers we do not control: publish → the worker signs and sends → the
receiver verifies as the spec tells customers to → the delivery log shows each attempt."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from attribution_webhooks.app.services import NewEvent
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.outcomes import ErrorKind
from attribution_webhooks.core.wire import MAX_SAFE_INTEGER
from receivers.scripted import ScriptedServer, free_port

from .conftest import run
from .delivering import SECRET, Worker, receiver_process, running_worker

RECEIVERS = Path(__file__).resolve().parents[1] / "receivers"

PAYLOADS: list[dict[str, Any]] = [
    {"partnerName": "Société Générale", "city": "東京", "note": "日本の取引 🎉👍🏽", "rocket": "🚀"},
    {"amount": MAX_SAFE_INTEGER, "refund": -MAX_SAFE_INTEGER, "zero": 0, "one": 1},
    {"decimals": [0.1, 33.33, 1e-7, 1e21, 1.5e300, 123456.789, 5e-324, -0.5, 2.5e-8, 1e20]},
    {
        "attribution": [
            {
                "partnerId": "partner_abc",
                "credit": 5000.5,
                "percentage": 50,
                "meta": {"a": {"b": [1, {"c": None}]}},
            },
            {"partnerId": "partner_xyz", "credit": 4999.5, "percentage": 49.99, "active": True, "tags": []},
        ],
        "empty": {},
    },
    {
        "10": "ten",
        "2": "two",
        "name": "keys",
        "1": "one",
        "01": "zero-one",
        "-1": "minus one",
        "4294967295": "big",
    },
    {
        "quote": 'she said "hi"',
        "backslash": "C:\\path",
        "lines": "one\ntwo\r\n",
        "tab": "\t",
        "control": "\u0001\u001f",
        "separators": "\u2028\u2029",
        "html": "</script><b>&amp;",
    },
]


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


async def _publish_all(worker: Worker, url: str) -> list[str]:
    endpoint = await worker.service.register_endpoint("acct_1", url, ["deal.attributed"], secret=SECRET)
    assert endpoint.endpoint.url == url
    delivery_ids = []
    for data in PAYLOADS:
        result = await worker.service.publish("acct_1", NewEvent("deal.attributed", data))
        delivery_ids += result.delivery_ids
    await worker.wait_final(delivery_ids)
    return delivery_ids


async def _assert_all_delivered_once(worker: Worker, delivery_ids: list[str]) -> None:
    for delivery_id in delivery_ids:
        assert await worker.status(delivery_id) is DeliveryStatus.SUCCEEDED
        [attempt] = await worker.log(delivery_id)
        assert (attempt.succeeded, attempt.status_code, attempt.error) == (True, 200, None)
        assert attempt.response_body == "OK"
        assert 0 < attempt.elapsed_ms < 2000


def test_the_spec_python_receiver_verifies_every_delivery() -> None:
    """The spec's Python example (HMAC of the raw body, compare_digest) accepts every payload."""
    script = [sys.executable, str(RECEIVERS / "spec_receiver.py"), SECRET]
    with receiver_process(script) as port:

        async def scenario() -> list[str]:
            async with running_worker() as worker:
                ids = await _publish_all(worker, f"http://127.0.0.1:{port}/webhooks/attribution")
                await _assert_all_delivered_once(worker, ids)
                return ids

        delivery_ids = run(scenario())
        stats = _stats(port)
    assert (stats["verified"], stats["rejected"]) == (len(PAYLOADS), 0)
    assert len(delivery_ids) == len(PAYLOADS)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_spec_node_receiver_verifies_every_delivery() -> None:
    """The spec's Node.js example (JSON.stringify of the parsed body, timingSafeEqual) accepts every
    payload: non-ASCII text, integers up to 2^53-1, decimals, nesting, integer-like keys, escapes."""
    script = ["node", str(RECEIVERS / "spec_receiver.js"), SECRET]
    with receiver_process(script) as port:

        async def scenario() -> None:
            async with running_worker() as worker:
                ids = await _publish_all(worker, f"http://127.0.0.1:{port}/webhooks/attribution")
                await _assert_all_delivered_once(worker, ids)

        run(scenario())
        stats = _stats(port)
    assert stats["errors"] == []
    assert (stats["verified"], stats["rejected"]) == (len(PAYLOADS), 0)


def _gaps(log: Any) -> list[float]:
    """Seconds between the end of each attempt and the start of the next."""
    return [
        (after.started_at - before.started_at).total_seconds() - before.elapsed_ms / 1000
        for before, after in itertools.pairwise(log)
    ]


def test_misbehaving_receivers_end_in_the_right_log_and_the_worker_keeps_running() -> None:
    """500, 429 + Retry-After, 301, a hang, a reset, a 50 MB body and a receiver that is down and
    comes back, all at once through one worker: each gets the log entries and retry schedule it
    deserves, and the worker goes on delivering afterwards."""
    port_down = free_port()
    paths = ["/status/500", "/status/429?retry_after=2", "/redirect", "/hang", "/reset", "/huge", "/ok"]

    async def scenario(server: ScriptedServer) -> None:
        async with running_worker(retry=(0.3, 0.3, 0.3), request_timeout=1.0) as worker:
            urls = [server.url(path) for path in paths] + [f"http://127.0.0.1:{port_down}/hook"]
            for url in urls:
                await worker.service.register_endpoint("acct_1", url, ["deal.attributed"], secret=SECRET)
            published = await worker.service.publish("acct_1", NewEvent("deal.attributed", {"dealId": "d1"}))
            by_url = dict(zip(urls, published.delivery_ids, strict=True))

            # The last receiver is down; it comes back once its first attempt has been refused.
            down = by_url[urls[-1]]
            while not await worker.log(down):
                await asyncio.sleep(0.01)
            with ScriptedServer.running(port=port_down) as back:
                await worker.wait_final(published.delivery_ids, timeout=60)
                assert len(back.requests("/hook")) == 1

            logs = {path: await worker.log(by_url[server.url(path)]) for path in paths}
            statuses = {path: await worker.status(by_url[server.url(path)]) for path in paths}

            failing = {"/status/500": 500, "/status/429?retry_after=2": 429, "/redirect": 301}
            for path, status in failing.items():
                assert statuses[path] is DeliveryStatus.FAILED
                assert [a.status_code for a in logs[path]] == [status] * 4
                assert all(a.error is None and not a.succeeded for a in logs[path])
                assert logs[path][0].detail == f"HTTP {status}"
            assert logs["/status/500"][0].response_body == "status 500 on purpose"
            # The policy's 0.3 s (the upper bound leaves a loaded machine room, and is still below
            # the other endpoint's Retry-After: 2).
            assert all(0.25 <= gap < 1.8 for gap in _gaps(logs["/status/500"]))
            # Retry-After: 2 outweighs the policy's 0.3 s.
            assert all(gap >= 1.95 for gap in _gaps(logs["/status/429?retry_after=2"]))
            assert server.requests("/elsewhere") == []

            assert [a.error for a in logs["/hang"]] == [ErrorKind.READ_TIMEOUT] * 4
            assert all(950 <= a.elapsed_ms < 5000 for a in logs["/hang"])  # the 1 s timeout, not 15 s
            assert [a.error for a in logs["/reset"]] == [ErrorKind.CONNECTION_RESET] * 4
            assert statuses["/hang"] is statuses["/reset"] is DeliveryStatus.FAILED

            [huge] = logs["/huge"]
            assert (huge.succeeded, huge.status_code, len(huge.response_body)) == (True, 200, 4096)
            assert huge.elapsed_ms < 1000
            [ok] = logs["/ok"]
            assert ok.succeeded

            down_log = await worker.log(down)
            assert [a.error for a in down_log[:-1]] == [ErrorKind.CONNECTION_REFUSED] * (len(down_log) - 1)
            assert down_log[-1].succeeded
            assert await worker.status(down) is DeliveryStatus.SUCCEEDED

            # Still running: a new event is delivered.
            again = await worker.service.publish("acct_1", NewEvent("deal.attributed", {"dealId": "d2"}))
            await worker.wait_final(again.delivery_ids, timeout=10)
            assert await worker.status(again.delivery_ids[paths.index("/ok")]) is DeliveryStatus.SUCCEEDED
            assert not worker.task.done()

    with ScriptedServer.running() as server:
        run(scenario(server))


def test_every_request_carries_the_documented_headers() -> None:
    """What the receiver sees: the signature over the exact body, event headers, one User-Agent."""
    with ScriptedServer.running() as server:

        async def scenario() -> None:
            async with running_worker() as worker:
                await worker.service.register_endpoint(
                    "acct_1", server.url("/ok"), ["deal.attributed"], secret=SECRET
                )
                result = await worker.service.publish("acct_1", NewEvent("deal.attributed", {"x": "é"}))
                await worker.wait_final(result.delivery_ids)

        run(scenario())
        [received] = server.requests("/ok")
    assert (
        received.headers["x-attribution-signature"]
        == hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    )
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"].startswith("attribution-webhooks/")
    assert received.headers["x-attribution-event-type"] == "deal.attributed"
    assert json.loads(received.body)["data"] == {"x": "é"}
