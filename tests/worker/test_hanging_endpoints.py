"""Over real HTTP on 127.0.0.1: 50 endpoints that accept connections and never answer do not
starve a healthy endpoint of another account (issue 10.2, ADR 0014).

What is checked is what the dispatcher did, in order, not how fast: once the hanging endpoints
hold every slot their account may have (64, the whole worker), a healthy endpoint's deliveries
all start and succeed while every one of those hanging attempts is still in flight. The fair-slot
budget (``core.fairness``) makes that so: untrusted attempts count against the concurrency only
up to 16 slots, so trusted endpoints keep the other 48. Without it the healthy deliveries find
no slot and are handed back until a hanging attempt ends, which the long request timeout puts
30 s away: the test then sees a hanging attempt end first and fails. No latency is compared,
so a loaded machine only makes it slower (the timeouts below bound a hang, nothing else).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transport"))

from delivering import Worker, running_worker
from worker_http import read_request

from attribution_webhooks.app.services import NewEvent
from attribution_webhooks.core.catalog import EventType
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.samples import SAMPLE_DATA

HANGING = 50
BACKLOG = 20  # events to the hanging account: 1,000 deliveries, far more than the slots
SLOTS = 64  # DispatchSettings.concurrency, and so one account's share (account_share 1.0)
HEALTHY = 20  # more than the healthy endpoint's 8 concurrent attempts: some wait for its slots
HANG_TIMEOUT = 30.0  # request timeout: no hanging attempt ends by itself during the test
BOUND = 60.0  # seconds any wait below may take before the test gives up (a hang, not a measure)


class Hanging:
    """Listeners that read each request and never answer; they count requests arrived, requests
    whose connection the client dropped (the attempt ended), and the most open at once."""

    def __init__(self) -> None:
        self.arrived = 0
        self.ended = 0
        self.most_open = 0
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def open(self) -> int:
        return self.arrived - self.ended

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.arrived += 1
        self.most_open = max(self.most_open, self.open)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up (or the test hangs up, below)
        self.ended += 1
        writer.close()

    def hang_up(self) -> None:
        """Close every connection from this side, so the worker can stop without waiting."""
        for writer in self._writers:
            writer.close()


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A healthy receiver: answers every request at once."""
    try:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def _event(event_id: str) -> NewEvent:
    return NewEvent(
        type=EventType.DEAL_ATTRIBUTED, data=dict(SAMPLE_DATA[EventType.DEAL_ATTRIBUTED]), id=event_id
    )


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {BOUND} s for {what}"
        await asyncio.sleep(0.02)


async def _healthy_beside_hanging(worker: Worker, hanging: Hanging, ports: list[int]) -> None:
    service = worker.service
    await service.register_endpoint(
        "acct_ok", f"http://127.0.0.1:{ports[0]}/hooks", [EventType.DEAL_ATTRIBUTED]
    )
    # One delivery first, so that the worker has measured the healthy endpoint: it is trusted.
    warm = await service.publish("acct_ok", _event("evt_warm"))
    await worker.wait_final(warm.delivery_ids, timeout=BOUND)
    for port in ports[1:]:
        await service.register_endpoint(
            "acct_hang", f"http://127.0.0.1:{port}/hooks", [EventType.DEAL_ATTRIBUTED]
        )
    for number in range(BACKLOG):
        await service.publish("acct_hang", _event(f"evt_hang_{number}"))
    await _until(lambda: hanging.open >= SLOTS, f"{SLOTS} hanging attempts in flight")

    healthy: list[str] = []
    for number in range(HEALTHY):
        healthy += (await service.publish("acct_ok", _event(f"evt_ok_{number}"))).delivery_ids

    async def succeeded() -> int:
        return sum([await worker.status(d) is DeliveryStatus.SUCCEEDED for d in healthy])

    deadline = time.monotonic() + BOUND
    while await succeeded() < len(healthy) and hanging.ended == 0:
        assert time.monotonic() < deadline, f"neither done nor a hanging attempt over in {BOUND} s"
        await asyncio.sleep(0.02)
    assert hanging.ended == 0, (
        f"a hanging attempt ended when {await succeeded()} of {len(healthy)} healthy deliveries had"
        " succeeded: the hanging endpoints held the healthy one's slots"
    )
    for delivery_id in healthy:
        assert [a.attempt for a in await worker.log(delivery_id)] == [1]
    # The hanging attempts were capped by their account's share (the whole worker), not by the
    # untrusted budget: they count against the concurrency as 16 slots only (ADR 0014).
    assert hanging.open == hanging.most_open == SLOTS


def test_fifty_hanging_endpoints_leave_a_healthy_one_its_slots() -> None:
    """With 64 attempts to hanging endpoints in flight, a healthy endpoint's deliveries all
    succeed, at their first attempt, before any of those hanging attempts ends."""

    async def scenario() -> None:
        hanging = Hanging()
        servers = [await asyncio.start_server(_answer, "127.0.0.1", 0)]
        servers += [await asyncio.start_server(hanging.handle, "127.0.0.1", 0) for _ in range(HANGING)]
        ports = [server.sockets[0].getsockname()[1] for server in servers]
        try:
            async with running_worker(retry=(0.2, 0.2), request_timeout=HANG_TIMEOUT) as worker:
                try:
                    await _healthy_beside_hanging(worker, hanging, ports)
                finally:
                    hanging.hang_up()  # the worker stops without waiting out the request timeout
        finally:
            for server in servers:
                server.close()

    asyncio.run(scenario())
