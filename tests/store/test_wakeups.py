"""Wake-ups between processes over PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy.engine import URL

from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.adapters.sql import open_store
from attribution_webhooks.adapters.sql.wakeups import PostgresWakeups, libpq_conninfo
from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator
from attribution_webhooks.app.services import NewEvent, NoticeBoard, ServiceSettings, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.core.endpoint import EndpointRules
from attribution_webhooks.core.outcomes import HttpResponse, Outcome
from attribution_webhooks.core.ports import OutboundRequest

pytestmark = pytest.mark.postgres
URL_ = "http://127.0.0.1:9/hook"


class Answered:
    """A receiver that answers 200 at once and notes when each request arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    async def send(self, request: OutboundRequest) -> Outcome:
        self.arrivals.append(time.perf_counter())
        return HttpResponse(200, timedelta(milliseconds=1), "OK")


def _service(url: URL) -> WebhookService:
    return WebhookService(
        open_store(url),
        SystemClock(),
        UlidGenerator(),
        SystemRandom(),
        ServiceSettings(endpoint_rules=EndpointRules(require_https=False)),
    )


def test_conninfo_drops_the_driver() -> None:
    """psycopg takes libpq's URL form, without SQLAlchemy's '+psycopg'."""
    assert libpq_conninfo("postgresql+psycopg://postgres@127.0.0.1:5432/test") == (
        "postgresql://postgres@127.0.0.1:5432/test"
    )


async def test_a_publish_in_one_process_wakes_a_worker_in_another(postgres_url: URL) -> None:
    """With a minute between polls, a worker on another store still starts long before its next
    poll (within 20 s: the wake-up, not the poll; a loaded machine may take seconds)."""
    api, worker_side = _service(postgres_url), _service(postgres_url)
    receiver = Answered()
    dispatcher = Dispatcher.beside(
        worker_side, receiver, HmacSigner(), DispatchSettings(poll_interval=timedelta(seconds=60))
    )
    stop = asyncio.Event()
    try:
        async with PostgresWakeups(postgres_url) as sending, PostgresWakeups(postgres_url) as hearing:
            assert isinstance(api.ports.notices, NoticeBoard)
            api.ports.notices.subscribe(sending)
            running = asyncio.ensure_future(dispatcher.run(stop))
            listening = asyncio.ensure_future(hearing.listen(dispatcher, stop))
            await asyncio.sleep(0.5)  # the worker is asleep for a minute now
            await api.register_endpoint("acct_1", URL_, ["deal.attributed"])
            published = time.perf_counter()
            await api.publish("acct_1", NewEvent("deal.attributed", {"dealId": "d"}))
            deadline = time.monotonic() + 20
            while not receiver.arrivals and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.gather(running, listening)
    finally:
        api.ports.store.close()  # type: ignore[attr-defined]
        worker_side.ports.store.close()  # type: ignore[attr-defined]
    assert receiver.arrivals, "the worker never woke"
    assert receiver.arrivals[0] - published < 20


async def test_endpoint_changes_reach_other_processes(postgres_url: URL) -> None:
    """An endpoint changed in one process is announced to the others' dispatchers."""

    class Heard:
        def __init__(self) -> None:
            self.changed: list[str] = []
            self.woken = 0

        def deliveries_due(self) -> None:
            self.woken += 1

        def endpoint_changed(self, endpoint_id: str) -> None:
            self.changed.append(endpoint_id)

    heard = Heard()
    stop = asyncio.Event()
    async with PostgresWakeups(postgres_url) as sending, PostgresWakeups(postgres_url) as hearing:
        listening = asyncio.ensure_future(hearing.listen(heard, stop))
        await asyncio.sleep(0.3)
        sending.endpoint_changed("wh_123")
        for _ in range(100):
            if heard.changed:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await listening
    assert heard.changed == ["wh_123"]
    assert heard.woken >= 1  # on connecting: anything published while it was not listening
