"""``attribution-webhooks demo``: a delivery scenario in virtual time, printed as a delivery log.

Two endpoints subscribe to the spec's events; one is down for the first ten minutes. Every event
of the spec is published, and the log shows each attempt: the receiver that was down gets the
spec's retries (immediately, +1 min, +5 min, ...) until it comes back. Nothing here touches the
network: the receivers are simulated (``attribution_webhooks.testing``).
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import TextIO

from ..adapters.memory import MemoryStore
from ..adapters.signing import HmacSigner
from ..app.services import NewEvent, WebhookService
from ..app.worker import Dispatcher
from ..core.catalog import EVENT_TYPES
from ..core.samples import SAMPLE_DATA
from .fakes import EPOCH, FakeNetwork, LoopClock, Route, SeededRandom, SequentialIds
from .loop import run_virtual

__all__ = ["run_demo"]


async def _scenario(seed: int, out: TextIO) -> None:
    clock = LoopClock(EPOCH)
    store = MemoryStore()
    network = FakeNetwork(clock, random.Random(seed))
    service = WebhookService(store, clock, SequentialIds(), SeededRandom(seed))
    dispatcher = Dispatcher.beside(service, network, HmacSigner())
    crm = await service.register_endpoint(
        "acct_demo", "https://crm.example/webhooks/attribution", EVENT_TYPES, description="CRM sync"
    )
    payouts = await service.register_endpoint(
        "acct_demo", "https://payouts.example/hooks", ["deal.attributed"], description="Commission payouts"
    )
    network.routes[crm.endpoint.url] = Route(latency=(0.02, 0.2))
    outage = (EPOCH, EPOCH + timedelta(minutes=10))
    network.routes[payouts.endpoint.url] = Route(
        latency=(0.02, 0.2), outages=[outage], outage_failure="503", retry_after=None
    )

    stop = asyncio.Event()
    worker = asyncio.ensure_future(dispatcher.run(stop))
    for event_type in EVENT_TYPES:
        await service.publish("acct_demo", NewEvent(event_type, SAMPLE_DATA[event_type]))
    await clock.sleep(3600)
    stop.set()
    await worker

    out.write(f"Two endpoints; {payouts.endpoint.url} answers 503 until +10 min.\n")
    out.write("Every event of the spec is published at 15:00:00 (virtual time).\n\n")
    out.write(f"{'time':<13} {'delivery':<13} {'event type':<17} {'try':>3}  {'result':<22} endpoint\n")
    rows = []
    for view in await store.deliveries("acct_demo", limit=100):
        delivery = view.delivery
        endpoint = crm if delivery.endpoint_id == crm.endpoint.endpoint_id else payouts
        for attempt in await store.attempts(delivery.delivery_id):
            result = f"{attempt.status_code} in {attempt.elapsed_ms:.0f} ms"
            if not attempt.succeeded:
                result = f"failed: {attempt.status_code or attempt.error}"
            rows.append(
                (attempt.started_at, delivery, attempt.attempt, result, endpoint.endpoint.description)
            )
    for started_at, delivery, number, result, description in sorted(rows, key=lambda row: row[0]):
        clock_time = started_at.strftime("%H:%M:%S.%f")[:12]
        out.write(
            f"{clock_time:<13} {delivery.delivery_id:<13} {delivery.event_type:<17} {number:>3}  "
            f"{result:<22} {description}\n"
        )
    stats = dispatcher.stats
    out.write(
        f"\n{stats.attempts} attempts, {stats.succeeded} delivered, "
        f"{stats.failed_attempts} failed and retried on the spec's schedule.\n"
    )


def run_demo(seed: int, out: TextIO) -> int:
    """Run the demo scenario and write its delivery log to ``out``."""
    run_virtual(lambda: _scenario(seed, out))
    return 0
