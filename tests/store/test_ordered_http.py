"""Ordered delivery over real HTTP (ADR 0016): two workers, each with its own connection to one
database (SQLite and PostgreSQL), deliver to a receiver on 127.0.0.1 that fails the first event
a few times; the later events arrive only after it, one at a time, in publish order."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from attrs import define, field
from sqlalchemy.engine import URL

from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport
from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.adapters.sql import SqlStore, open_store
from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator
from attribution_webhooks.app.services import NewEvent, ServiceSettings, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.endpoint import EndpointRules
from attribution_webhooks.core.retry import RetryPolicy

EVENTS = 8
FAILURES = 3  # the first event is refused this many times, then accepted


@define
class Receiver:
    """Records every request per path: (event id, start, end, answered 2xx), and the most
    requests it ever had in flight at once per path."""

    failures_left: int = FAILURES
    log: dict[str, list[tuple[str, float, float, bool]]] = field(factory=dict)
    in_flight: dict[str, int] = field(factory=dict)
    most_in_flight: dict[str, int] = field(factory=dict)
    lock: threading.Lock = field(factory=threading.Lock)

    def handle(self, path: str, body: bytes) -> int:
        event_id = json.loads(body)["id"]
        started = time.monotonic()
        with self.lock:
            self.in_flight[path] = self.in_flight.get(path, 0) + 1
            self.most_in_flight[path] = max(self.most_in_flight.get(path, 0), self.in_flight[path])
            fail = path == "/ordered" and event_id == "evt_0" and self.failures_left > 0
            self.failures_left -= fail
        time.sleep(0.03)  # long enough for a second request to overlap, were one sent
        with self.lock:
            self.in_flight[path] -= 1
            self.log.setdefault(path, []).append((event_id, started, time.monotonic(), not fail))
        return 500 if fail else 200


@contextmanager
def serving(receiver: Receiver) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = receiver.handle(self.path, body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def service_on(store: SqlStore) -> WebhookService:
    settings = ServiceSettings(
        endpoint_rules=EndpointRules(require_https=False),
        retry=RetryPolicy(delays=tuple(timedelta(seconds=0.2) for _ in range(4))),
    )
    return WebhookService(store, SystemClock(), UlidGenerator(), SystemRandom(), settings)


async def test_a_failing_first_event_holds_back_the_rest_across_two_workers(sql_url: str | URL) -> None:
    """Event 0 is refused three times; events 1-7 reach the ordered endpoint only after its
    success, in publish order, never two at a time. An unordered endpoint beside it gets every
    event at once, so the line is the setting's doing."""
    receiver = Receiver()
    stores = [open_store(sql_url) for _ in range(2)]  # two workers, two connection pools
    try:
        with serving(receiver) as port:
            service = service_on(stores[0])
            base = f"http://127.0.0.1:{port}"
            ordered = await service.register_endpoint(
                "acct_1", f"{base}/ordered", ["deal.attributed"], ordered=True
            )
            await service.register_endpoint("acct_1", f"{base}/concurrent", ["deal.attributed"])
            assert ordered.endpoint.ordered
            for n in range(EVENTS):
                await service.publish("acct_1", NewEvent("deal.attributed", {"n": n}, f"evt_{n}"))
            settings = DispatchSettings(
                request_timeout=timedelta(seconds=2), poll_interval=timedelta(seconds=0.05), claim_batch=4
            )
            stop = asyncio.Event()
            async with AsyncExitStack() as stack:
                runs = []
                for store in stores:
                    transport = await stack.enter_async_context(
                        HttpTransport(EgressSettings(mode=EgressMode.DEVELOPMENT))
                    )
                    dispatcher = Dispatcher.beside(service_on(store), transport, HmacSigner(), settings)
                    runs.append(asyncio.create_task(dispatcher.run(stop)))
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    views = await stores[1].deliveries("acct_1", limit=100)
                    if len(views) == 2 * EVENTS and all(
                        v.delivery.status is DeliveryStatus.SUCCEEDED for v in views
                    ):
                        break
                    await asyncio.sleep(0.05)
                stop.set()
                await asyncio.gather(*runs)
    finally:
        for store in stores:
            store.close()
    line = receiver.log["/ordered"]
    assert [event for event, *_ in line] == ["evt_0"] * (FAILURES + 1) + [
        f"evt_{n}" for n in range(1, EVENTS)
    ]
    assert [ok for *_, ok in line] == [False] * FAILURES + [True] * EVENTS
    assert receiver.most_in_flight["/ordered"] == 1
    first_success_end = line[FAILURES][2]
    assert all(start >= first_success_end for _, start, _, _ in line[FAILURES + 1 :])
    assert sorted(event for event, *_ in receiver.log["/concurrent"]) == sorted(
        f"evt_{n}" for n in range(EVENTS)
    )
