"""A day in the life of the service, on virtual time: the deterministic workload that the rebuild
and equivalence tests run over a store. Endpoints that succeed, flake, stay down, get disabled,
re-enabled, rotated and deleted; events published; retries, failures and redeliveries."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.app.services import NewEvent, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.ports import Storage
from attribution_webhooks.testing import (
    FakeNetwork,
    LoopClock,
    Route,
    SeededRandom,
    SequentialIds,
    run_virtual,
)
from attribution_webhooks.testing.fakes import EPOCH

ACCOUNT = "acct_1"
HOOK = "https://hooks.example/"


def run_workload(store: Storage, seed: int = 7) -> None:
    """Run the workload to quiet: afterwards no delivery is pending, so no lease is outstanding."""
    run_virtual(lambda: _workload(store, seed))


async def _workload(store: Storage, seed: int) -> None:
    clock = LoopClock()
    network = FakeNetwork(clock, random.Random(seed))
    network.routes[HOOK + "ok"] = Route()
    network.routes[HOOK + "flaky"] = Route(failure_rate=0.4, failures=("500", "503", "timeout", "reset"))
    network.routes[HOOK + "down"] = Route(outages=((EPOCH, EPOCH + timedelta(days=30)),))
    network.routes[HOOK + "gone"] = Route(latency=(0.5, 1.0))
    service = WebhookService(store, clock, SequentialIds(), SeededRandom(seed))
    settings = DispatchSettings(
        claim_batch=16, per_endpoint_concurrency=2, concurrency=8, poll_interval=timedelta(seconds=60)
    )
    dispatcher = Dispatcher.beside(service, network, HmacSigner(), settings)  # it hears the service's notices
    stop = asyncio.Event()
    running = asyncio.ensure_future(dispatcher.run(stop))

    # "flaky" delivers in order (ADR 0016): its line waits behind each failing head.
    views = {
        name: await service.register_endpoint(
            ACCOUNT, HOOK + name, ["deal.attributed", "partner.created"], ordered=name == "flaky"
        )
        for name in ("ok", "flaky", "down", "gone")
    }
    ids = {name: view.endpoint.endpoint_id for name, view in views.items()}
    other = await service.register_endpoint("acct_2", HOOK + "ok", ["deal.attributed"])

    async def publish(count: int) -> None:
        for n in range(count):
            await service.publish(ACCOUNT, NewEvent("deal.attributed", {"dealId": f"deal_{n}", "amount": n}))
            await service.publish("acct_2", NewEvent("deal.attributed", {"dealId": f"other_{n}"}))
            await clock.sleep(0.2)

    await publish(10)
    await service.disable_endpoint(ACCOUNT, ids["flaky"])
    await publish(5)
    await service.rotate_secret(ACCOUNT, ids["ok"])
    await service.update_endpoint(ACCOUNT, ids["ok"], description="primary", ordered=True)
    await service.delete_endpoint(ACCOUNT, ids["gone"])
    await clock.sleep(600)
    await service.enable_endpoint(ACCOUNT, ids["flaky"])
    await publish(5)
    await service.disable_endpoint("acct_2", other.endpoint.endpoint_id)
    await clock.sleep(3 * 3600)  # every retry schedule has run out
    down = ids["down"]
    failed = await store.deliveries(ACCOUNT, endpoint_id=down, statuses=[DeliveryStatus.FAILED], limit=3)
    for view in failed:
        await service.redeliver(ACCOUNT, view.delivery.delivery_id)
    await service.delete_endpoint("acct_2", other.endpoint.endpoint_id)
    await clock.sleep(3 * 3600)
    stop.set()
    await running
