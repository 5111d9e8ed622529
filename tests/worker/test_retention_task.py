"""The retention task beside a dispatcher, on virtual time (ADR 0018): it purges old finished
history in batches while deliveries go on, and never removes a delivery that is not final."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from datetime import datetime, timedelta

from attrs import define, field

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.app.services import NewEvent, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.app.worker.retention import Retention
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.retention import FINAL, PurgeReport, RetentionPolicy
from attribution_webhooks.core.samples import SAMPLE_DATA
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
AGE = timedelta(hours=6)


@define
class WatchedStore(MemoryStore):
    """The memory store, checking around each purge that only final deliveries went."""

    removed: dict[str, DeliveryStatus] = field(factory=dict, init=False)
    batches: list[PurgeReport] = field(factory=list, init=False)

    async def _statuses(self) -> Mapping[str, DeliveryStatus]:
        views = await self.deliveries(ACCOUNT, limit=1_000_000)
        return {view.delivery.delivery_id: view.delivery.status for view in views}

    async def purge_events(
        self, horizon: datetime, now: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> PurgeReport:
        before = await self._statuses()
        report = await super().purge_events(horizon, now, after, limit)
        after_purge = await self._statuses()
        self.removed.update({i: s for i, s in before.items() if i not in after_purge})
        self.batches.append(report)
        return report


def test_retention_purges_in_batches_while_deliveries_go_on() -> None:
    """Over a virtual day, an event every ten minutes: retention removes finished history older than
    six hours, several batches a pass; every removed delivery was final; held deliveries and
    their events stay; deliveries published at the end still succeed."""
    store = WatchedStore()
    outcome = run_virtual(lambda: _run(store))
    retention, late = outcome
    assert retention.stats.passes >= 20
    assert retention.stats.events > 80
    assert any(report.cursor is not None for report in store.batches), "a pass takes several batches"
    assert store.removed, "deliveries were removed"
    assert set(store.removed.values()) <= FINAL
    assert DeliveryStatus.FAILED in store.removed.values()
    assert all(status is DeliveryStatus.SUCCEEDED for status in late)


async def _run(store: WatchedStore) -> tuple[Retention, list[DeliveryStatus]]:
    clock = LoopClock()
    network = FakeNetwork(clock, random.Random(3))
    network.routes[HOOK + "ok"] = Route()
    network.routes[HOOK + "down"] = Route(outages=((EPOCH, EPOCH + timedelta(hours=2)),))
    network.routes[HOOK + "held"] = Route()
    service = WebhookService(store, clock, SequentialIds(), SeededRandom(3))
    settings = DispatchSettings(poll_interval=timedelta(seconds=60))
    dispatcher = Dispatcher.beside(service, network, HmacSigner(), settings)
    policy = RetentionPolicy(age=AGE, batch=4, pause=timedelta(seconds=1), interval=timedelta(hours=1))
    retention = Retention(store, clock, policy)
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(dispatcher.run(stop)), asyncio.ensure_future(retention.run(stop))]

    ok = await service.register_endpoint(ACCOUNT, HOOK + "ok", ["deal.attributed", "partner.created"])
    await service.register_endpoint(ACCOUNT, HOOK + "down", ["deal.attributed"])
    held = await service.register_endpoint(ACCOUNT, HOOK + "held", ["partner.created"])
    await service.disable_endpoint(ACCOUNT, held.endpoint.endpoint_id)
    for step in range(144):  # every ten minutes for a day
        kind = "partner.created" if step % 24 == 0 else "deal.attributed"
        await service.publish(ACCOUNT, NewEvent(kind, dict(SAMPLE_DATA[kind])))
        await clock.sleep(600)
    late = []
    for _ in range(5):
        result = await service.publish(
            ACCOUNT, NewEvent("partner.created", dict(SAMPLE_DATA["partner.created"]))
        )
        late += result.delivery_ids
    await clock.sleep(600)
    statuses = []
    for delivery_id in late:
        view = await store.delivery(delivery_id)
        assert view is not None
        if view.delivery.endpoint_id == ok.endpoint.endpoint_id:
            statuses.append(view.delivery.status)
    stop.set()
    await asyncio.gather(*tasks)
    held_left = await store.deliveries(ACCOUNT, endpoint_id=held.endpoint.endpoint_id, limit=1000)
    assert len(held_left) == 6 + 5, "every held delivery is kept"
    for view in held_left:
        assert await store.event(ACCOUNT, view.delivery.event_id) is not None
    oldest_kept = min(
        (
            view.created_at
            for view in await store.deliveries(ACCOUNT, limit=100_000)
            if view.delivery.event_type == "deal.attributed"  # no held sibling keeps it
        ),
        default=None,
    )
    assert oldest_kept is not None
    assert oldest_kept >= clock.now() - AGE - policy.interval - timedelta(minutes=20)
    return retention, statuses
