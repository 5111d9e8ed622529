"""Operational notices over real HTTP: a receiver on 127.0.0.1 subscribed to the notices gets a
signed ``delivery.exhausted`` when another local endpoint fails every retry (ADR 0017)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from attribution_webhooks.app.services import NewEvent
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.samples import SAMPLE_DATA

from .conftest import run
from .delivering import SECRET, running_worker


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]
    status: int

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: Any) -> None:  # the standard library's name
        return


@contextmanager
def receiver(status: int) -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A receiver on 127.0.0.1 that answers ``status`` and keeps what it got."""
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Receiver,), {"received": received, "status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_notice_receiver_gets_a_signed_delivery_exhausted() -> None:
    """An endpoint answering 500 to every attempt exhausts its delivery; the notice receiver gets
    one signed delivery.exhausted naming it, and the broken endpoint gets no notice."""
    with receiver(500) as (broken_url, broken_got), receiver(200) as (notices_url, notices_got):

        async def scenario() -> None:
            async with running_worker(retry=(0.1, 0.1)) as worker:
                service = worker.service
                await service.register_endpoint("acct_1", notices_url, ["delivery.exhausted"], secret=SECRET)
                broken = await service.register_endpoint(
                    "acct_1", broken_url, ["deal.attributed"], secret=SECRET
                )
                published = await service.publish(
                    "acct_1", NewEvent("deal.attributed", SAMPLE_DATA["deal.attributed"])
                )
                await worker.wait_final(published.delivery_ids)
                assert await worker.status(published.delivery_ids[0]) is DeliveryStatus.FAILED
                deadline = time.monotonic() + 10
                while not notices_got and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                [(headers, body)] = notices_got
                expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                assert headers["X-Attribution-Signature"] == expected
                notice = json.loads(body)
                assert notice["type"] == "delivery.exhausted"
                assert notice["data"]["deliveryId"] == published.delivery_ids[0]
                assert notice["data"]["webhookId"] == broken.endpoint.endpoint_id
                assert notice["data"]["attempts"] == 3
                assert notice["data"]["lastStatusCode"] == 500
                [logged] = await worker.store.deliveries("acct_1", event_id=notice["id"])
                await worker.wait_final([logged.delivery.delivery_id])  # the answer may still be on its way
                assert await worker.status(logged.delivery.delivery_id) is DeliveryStatus.SUCCEEDED
                assert [json.loads(b)["type"] for _, b in broken_got] == ["deal.attributed"] * 3

        run(scenario())
