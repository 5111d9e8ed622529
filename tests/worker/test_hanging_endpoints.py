"""Over real HTTP on 127.0.0.1: 50 endpoints that accept connections and never answer do not slow
down a healthy endpoint of another account (issue 10.2). Its p99 delivery latency (from publish
to its answer, 20 ms after arrival like a real receiver's work) under that load stays within
twice its baseline, measured in the same run. (Without the answer time both p99s would be a
millisecond or two plus whatever the other tenants of a shared CI machine add, and the ratio
would measure that noise.)"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transport"))

from delivering import running_worker

from attribution_webhooks.app.services import NewEvent
from attribution_webhooks.core.catalog import EventType
from attribution_webhooks.core.samples import SAMPLE_DATA

HANGING = 50
BACKLOG = 20  # deliveries per hanging endpoint, retried every 0.2 s after each 2 s timeout
RATE = 25.0  # healthy publishes per second
SAMPLES = 150
WORK = 0.02  # seconds the healthy receiver takes to answer


class Healthy:
    """Answers every request after ``WORK`` and notes when each answer was sent."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                    elif name.lower() == b"x-attribution-event-id":
                        event_id = value.strip().decode()
                await reader.readexactly(length)
                await asyncio.sleep(WORK)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                self.arrived.setdefault(event_id, time.monotonic())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # accept, never answer, until the client gives up
    writer.close()


def _event(event_id: str) -> NewEvent:
    return NewEvent(
        type=EventType.DEAL_ATTRIBUTED, data=dict(SAMPLE_DATA[EventType.DEAL_ATTRIBUTED]), id=event_id
    )


async def _latencies(
    publish: Callable[[str, NewEvent], Awaitable[object]], healthy: Healthy, prefix: str
) -> list[float]:
    sent: dict[str, float] = {}
    for number in range(SAMPLES):
        event_id = f"evt_{prefix}_{number}"
        sent[event_id] = time.monotonic()
        await publish("acct_ok", _event(event_id))
        await asyncio.sleep(1 / RATE)
    deadline = time.monotonic() + 30
    while len([e for e in sent if e in healthy.arrived]) < SAMPLES and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert all(e in healthy.arrived for e in sent), "some healthy deliveries never arrived"
    return [healthy.arrived[e] - t for e, t in sent.items()]


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def test_fifty_hanging_endpoints_leave_a_healthy_one_its_latency() -> None:
    """With 50 hanging endpoints (2 s timeout) busy, a healthy endpoint's p99 is within 2x its baseline."""

    async def scenario() -> tuple[list[float], list[float]]:
        healthy = Healthy()
        servers = [await asyncio.start_server(healthy.handle, "127.0.0.1", 0)]
        servers += [await asyncio.start_server(_hang, "127.0.0.1", 0) for _ in range(HANGING)]
        ports = [server.sockets[0].getsockname()[1] for server in servers]
        try:
            async with running_worker(retry=(0.2, 0.2, 0.2, 0.2), request_timeout=2.0) as worker:
                service = worker.service
                await service.register_endpoint(
                    "acct_ok", f"http://127.0.0.1:{ports[0]}/hooks", [EventType.DEAL_ATTRIBUTED]
                )
                await service.publish("acct_ok", _event("evt_warm"))  # the endpoint becomes known
                baseline = await _latencies(service.publish, healthy, "base")
                for port in ports[1:]:
                    await service.register_endpoint(
                        "acct_hang", f"http://127.0.0.1:{port}/hooks", [EventType.DEAL_ATTRIBUTED]
                    )
                for number in range(BACKLOG):
                    await service.publish("acct_hang", _event(f"evt_hang_{number}"))
                await asyncio.sleep(2.5)  # every hanging endpoint has had attempts time out
                loaded = await _latencies(service.publish, healthy, "load")
                stats = worker.dispatcher.stats
                assert stats.attempts - len(baseline) - len(loaded) > HANGING, "the hanging ones were tried"
                return baseline, loaded
        finally:
            for server in servers:
                server.close()

    baseline, loaded = asyncio.run(scenario())
    print(
        f"healthy endpoint p50/p99: baseline {statistics.median(baseline) * 1000:.1f}/"
        f"{_p99(baseline) * 1000:.1f} ms, with {HANGING} hanging "
        f"{statistics.median(loaded) * 1000:.1f}/{_p99(loaded) * 1000:.1f} ms"
    )
    assert _p99(loaded) <= 2 * _p99(baseline)
