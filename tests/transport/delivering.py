"""A real worker for end-to-end tests: WebhookService + Dispatcher + MemoryStore + HttpTransport."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta

from attrs import define

from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport
from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator
from attribution_webhooks.app.services import ServiceSettings, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.endpoint import EndpointRules
from attribution_webhooks.core.retry import RetryPolicy
from attribution_webhooks.core.views import AttemptView

SECRET = "whsec_compat-Test-Secret-0123456789"
FINAL = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)


@define
class Worker:
    service: WebhookService
    store: MemoryStore
    dispatcher: Dispatcher
    task: asyncio.Task[None]

    async def wait_final(self, delivery_ids: Sequence[str], timeout: float = 15.0) -> None:
        """Until every delivery has succeeded or failed for good."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = [await self.store.delivery(d) for d in delivery_ids]
            if all(v is not None and v.delivery.status in FINAL for v in views):
                return
            assert not self.task.done(), "the worker stopped"
            await asyncio.sleep(0.02)
        raise TimeoutError(f"deliveries not final after {timeout} s")

    async def status(self, delivery_id: str) -> DeliveryStatus:
        view = await self.store.delivery(delivery_id)
        assert view is not None
        return view.delivery.status

    async def log(self, delivery_id: str) -> Sequence[AttemptView]:
        return await self.store.attempts(delivery_id)


@contextlib.asynccontextmanager
async def running_worker(
    retry: Sequence[float] = (0.2, 0.2),
    request_timeout: float = 2.0,
    settings: EgressSettings | None = None,
) -> AsyncIterator[Worker]:
    """A worker on the real clock, delivering through HttpTransport in development mode."""
    store = MemoryStore()
    service = WebhookService(
        store,
        SystemClock(),
        UlidGenerator(),
        SystemRandom(),
        ServiceSettings(
            endpoint_rules=EndpointRules(require_https=False),
            retry=RetryPolicy(delays=tuple(timedelta(seconds=s) for s in retry)),
        ),
    )
    async with HttpTransport(settings or EgressSettings(mode=EgressMode.DEVELOPMENT)) as transport:
        dispatcher = Dispatcher.beside(
            service,
            transport,
            HmacSigner(),
            DispatchSettings(
                request_timeout=timedelta(seconds=request_timeout),
                lease=timedelta(seconds=max(10.0, 3 * request_timeout)),
                poll_interval=timedelta(seconds=0.1),
            ),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        try:
            yield Worker(service, store, dispatcher, task)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@contextlib.contextmanager
def receiver_process(argv: list[str]) -> Iterator[int]:
    """Start a receiver script that prints ``{"port": N}``; stop it on exit."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"receiver {argv} exited with {process.wait()}")
        yield int(json.loads(line)["port"])
    finally:
        process.terminate()
        process.wait(5)
