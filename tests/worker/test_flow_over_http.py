"""Over real HTTP on 127.0.0.1, with a SQLite store (ADR 0015): a rate-limited webhook's
deliveries are paced while an unlimited one's go at once, and a circuit breaker opens on a run of
failures, sends single probes while open, and closes on a success, after which the backlog drains."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from attrs import define, field
from worker_http import read_request

from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport
from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.adapters.sql import SqlStore, open_store
from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator
from attribution_webhooks.app.services import NewEvent, ServiceSettings, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.core.catalog import EventType
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.endpoint import EndpointRules
from attribution_webhooks.core.events import BreakerClosed, BreakerOpened
from attribution_webhooks.core.flow import BreakerRules
from attribution_webhooks.core.retry import RetryPolicy
from attribution_webhooks.core.samples import SAMPLE_DATA

BREAKER = BreakerRules(
    first_probe_after=timedelta(seconds=0.3),
    max_probe_interval=timedelta(seconds=1),
    probe_lost_after=timedelta(seconds=5),
)


@define
class Receiver:
    """Answers 200, or 500 while ``failing``; notes when each request arrived, by path."""

    failing: set[str] = field(factory=set)
    arrivals: dict[str, list[float]] = field(factory=dict)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head, _ = await read_request(reader)
                path = head.split(b" ", 2)[1].decode()
                self.arrivals.setdefault(path, []).append(time.monotonic())
                status = b"500 Internal Server Error" if path in self.failing else b"200 OK"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nOK")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'flow.sqlite3'}")
    try:
        yield opened
    finally:
        opened.close()


def _event(number: int) -> NewEvent:
    return NewEvent(
        type=EventType.PARTNER_CREATED, data=dict(SAMPLE_DATA[EventType.PARTNER_CREATED]), id=f"evt_{number}"
    )


async def _until(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.05)


def test_rate_limit_paces_one_webhook_and_not_another(store: SqlStore) -> None:
    """15 deliveries to a webhook limited to 5/s take over 2.5 s and never 7 in a second; the same
    15 to an unlimited webhook all arrive meanwhile, before the limited one's first second is out."""
    receiver = Receiver()

    async def scenario() -> None:
        server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        service = WebhookService(
            store,
            SystemClock(),
            UlidGenerator(),
            SystemRandom(),
            ServiceSettings(endpoint_rules=EndpointRules(require_https=False)),
        )
        await service.register_endpoint(
            "acct_1", f"http://127.0.0.1:{port}/slow", [EventType.PARTNER_CREATED], rate_limit=5
        )
        await service.register_endpoint(
            "acct_1", f"http://127.0.0.1:{port}/free", [EventType.PARTNER_CREATED]
        )
        async with HttpTransport(EgressSettings(mode=EgressMode.DEVELOPMENT)) as transport:
            dispatcher = Dispatcher.beside(
                service, transport, HmacSigner(), DispatchSettings(poll_interval=timedelta(seconds=0.1))
            )
            stop = asyncio.Event()
            task = asyncio.create_task(dispatcher.run(stop))
            try:
                await service.publish_batch("acct_1", [_event(n) for n in range(15)])
                await _until(lambda: len(receiver.arrivals.get("/slow", [])) >= 15, 20)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
                server.close()

    asyncio.run(scenario())
    slow, free = receiver.arrivals["/slow"], receiver.arrivals["/free"]
    assert len(slow) == 15
    assert len(free) == 15
    assert slow[-1] - slow[0] > 2.5  # 14 intervals of 0.2 s
    # The limit is 5 in any second at the sender; a few milliseconds of network jitter at most add one.
    assert max(sum(1 for t in slow if start <= t < start + 1.0) for start in slow) <= 6
    # The unlimited webhook did not wait behind the limited one's backlog: all of its 15 arrived
    # before the limited one's sixth, which its own limit holds back at least a second (an order
    # of arrivals, not a time budget that a loaded machine could overrun).
    assert max(free) < sorted(slow)[5]


def test_breaker_opens_probes_and_closes(store: SqlStore) -> None:
    """A webhook with a breaker after 2 failures: its run of failures opens the breaker, while it
    is open the requests are single probes 0.3 s or more apart, a successful probe closes it, and
    every delivery then succeeds, with no attempt number skipped."""
    receiver = Receiver(failing={"/down"})

    async def scenario() -> tuple[list[object], list[object]]:
        server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        service = WebhookService(
            store,
            SystemClock(),
            UlidGenerator(),
            SystemRandom(),
            ServiceSettings(
                endpoint_rules=EndpointRules(require_https=False),
                retry=RetryPolicy(delays=(timedelta(seconds=0.2),) * 4),
            ),
        )
        view = await service.register_endpoint(
            "acct_1",
            f"http://127.0.0.1:{port}/down",
            [EventType.PARTNER_CREATED],
            circuit_breaker_threshold=2,
        )
        endpoint_id = view.endpoint.endpoint_id
        async with HttpTransport(EgressSettings(mode=EgressMode.DEVELOPMENT)) as transport:
            dispatcher = Dispatcher.beside(
                service,
                transport,
                HmacSigner(),
                DispatchSettings(poll_interval=timedelta(seconds=0.1)),
                breaker=BREAKER,
            )
            stop = asyncio.Event()
            task = asyncio.create_task(dispatcher.run(stop))
            try:
                results = await service.publish_batch("acct_1", [_event(n) for n in range(6)])
                ids = [r.delivery_ids[0] for r in results]

                async def opened() -> bool:
                    return any(isinstance(r.event, BreakerOpened) for r in await store.read(endpoint_id))

                deadline = time.monotonic() + 10
                while not await opened() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.5)  # a few probes fail
                receiver.failing.clear()

                async def settled() -> bool:
                    views = [await store.delivery(i) for i in ids]
                    return all(v is not None and v.delivery.status is DeliveryStatus.SUCCEEDED for v in views)

                deadline = time.monotonic() + 15
                while not await settled() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                stream = [r.event for r in await store.read(endpoint_id)]
                logs = [list(await store.attempts(i)) for i in ids]
                return stream, logs
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
                server.close()

    stream, logs = asyncio.run(scenario())
    kinds = [type(event) for event in stream]
    assert BreakerOpened in kinds
    assert BreakerClosed in kinds
    assert kinds.index(BreakerOpened) < kinds.index(BreakerClosed)
    opened_at = next(e for e in stream if isinstance(e, BreakerOpened)).opened_at
    closed_at = next(e for e in stream if isinstance(e, BreakerClosed)).closed_at
    for log in logs:
        assert log[-1].succeeded  # type: ignore[attr-defined]
        assert [a.attempt for a in log] == list(range(1, len(log) + 1))  # type: ignore[attr-defined]
    starts = sorted(a.started_at for log in logs for a in log if opened_at < a.started_at < closed_at)  # type: ignore[attr-defined]
    assert len(starts) >= 2, "probes went while the breaker was open"
    assert all(b - a >= timedelta(seconds=0.29) for a, b in itertools.pairwise(starts))
