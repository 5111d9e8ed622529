"""Operational notices end to end on virtual time: published with their cause, to the right
webhooks, delivered like any event, and never about themselves (ADR 0017)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.app.services import NewEvent, ServiceSettings, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.core.events import EventPublished
from attribution_webhooks.core.retry import RetryPolicy
from attribution_webhooks.core.samples import SAMPLE_DATA
from attribution_webhooks.testing import (
    FakeNetwork,
    LoopClock,
    Route,
    SeededRandom,
    SequentialIds,
    run_virtual,
)

OPS = "https://ops.example/notices"
DEAD = "https://dead.example/hook"
FLAKY = "https://flaky.example/hook"
NOTICES = ["webhook.disabled", "webhook.failing", "delivery.exhausted"]
DEAL = dict(SAMPLE_DATA["deal.attributed"])


class World:
    """A service with a short retry schedule, a fake network, and a dispatcher beside it."""

    def __init__(self) -> None:
        self.clock = LoopClock()
        self.store = MemoryStore()
        self.network = FakeNetwork(self.clock, random.Random(5))
        self.network.routes[OPS] = Route(latency=(0.01, 0.01))
        self.network.routes[DEAD] = Route(latency=(0.01, 0.01), failure_rate=1.0, failures=("500",))
        settings = ServiceSettings(retry=RetryPolicy(delays=(timedelta(seconds=1), timedelta(seconds=2))))
        self.service = WebhookService(self.store, self.clock, SequentialIds(), SeededRandom(5), settings)

    async def register(self, url: str, events: list[str]) -> str:
        return (await self.service.register_endpoint("acct_1", url, events)).endpoint.endpoint_id

    async def run(self, seconds: float, during: Callable[[], Awaitable[None]]) -> None:
        stop = asyncio.Event()
        dispatcher = Dispatcher.beside(
            self.service, self.network, HmacSigner(), DispatchSettings(poll_interval=timedelta(seconds=60))
        )
        running = asyncio.ensure_future(dispatcher.run(stop))
        await during()
        await self.clock.sleep(seconds)
        stop.set()
        await running

    async def notices(self, event_type: str) -> list[EventPublished]:
        return [
            r.event
            for r in await self.store.read_all(0, 100_000)
            if isinstance(r.event, EventPublished) and r.event.event_type == event_type
        ]

    def received(self, url: str) -> list[dict[str, Any]]:
        return [json.loads(sent.body) for sent in self.network.requests if sent.url == url and sent.delivered]


def simulate(test: Callable[[World], Awaitable[None]]) -> None:
    run_virtual(lambda: test(World()))


def test_an_exhausted_delivery_is_noticed_once_to_the_subscribed_webhook() -> None:
    """A delivery that fails its last retry publishes one delivery.exhausted, delivered (signed,
    logged) to the webhook subscribed to it, and not to the failing endpoint itself."""

    async def scenario(world: World) -> None:
        ops_id = await world.register(OPS, NOTICES)
        dead_id = await world.register(DEAD, ["deal.attributed", "delivery.exhausted"])
        await world.run(60, lambda: world.service.publish("acct_1", NewEvent("deal.attributed", DEAL)))
        [notice] = await world.notices("delivery.exhausted")
        data = json.loads(notice.body)["data"]
        assert data["webhookId"] == dead_id
        assert data["attempts"] == 3
        assert data["lastStatusCode"] == 500
        assert [body["type"] for body in world.received(OPS)] == ["webhook.failing", "delivery.exhausted"]
        assert all(
            json.loads(sent.body)["type"] == "deal.attributed"
            for sent in world.network.requests
            if sent.url == DEAD
        )
        [delivery] = await world.store.deliveries("acct_1", event_id=notice.event_id)
        assert delivery.delivery.endpoint_id == ops_id
        assert delivery.delivery.status == "succeeded"
        sent = next(s for s in world.network.requests if s.url == OPS and b"delivery.exhausted" in s.body)
        assert sent.headers["X-Attribution-Signature"]

    simulate(scenario)


def test_the_exhaustion_of_a_notice_makes_no_notice() -> None:
    """A notice receiver that is down exhausts its notice deliveries: no delivery.exhausted about those."""

    async def scenario(world: World) -> None:
        await world.register(DEAD, ["deal.attributed"])
        world.network.routes[OPS] = Route(
            latency=(0.01, 0.01), failure_rate=1.0, failures=("503",), retry_after=None
        )
        await world.register(OPS, NOTICES)
        await world.run(120, lambda: world.service.publish("acct_1", NewEvent("deal.attributed", DEAL)))
        notices = await world.notices("delivery.exhausted")
        assert len(notices) == 1  # about the deal's delivery; the notice's own exhaustion is silent
        assert json.loads(notices[0].body)["data"]["eventType"] == "deal.attributed"
        failed = await world.store.deliveries("acct_1", event_id=notices[0].event_id)
        assert [d.delivery.status for d in failed] == ["failed"]

    simulate(scenario)


def test_disabling_by_hand_notices_the_other_subscribers_only() -> None:
    """Disabling a webhook publishes webhook.disabled (reason manual) to the other subscribers, not to itself."""

    async def scenario(world: World) -> None:
        ops_id = await world.register(OPS, NOTICES)
        other = await world.register("https://other.example/n", ["webhook.disabled"])

        async def disable() -> None:
            await world.service.disable_endpoint("acct_1", other)
            await world.service.disable_endpoint("acct_1", other)  # idempotent: no second notice

        await world.run(5, disable)
        [notice] = await world.notices("webhook.disabled")
        data = json.loads(notice.body)["data"]
        assert data == {**data, "webhookId": other, "reason": "manual", "failingSince": None}
        deliveries = await world.store.deliveries("acct_1", event_id=notice.event_id)
        assert [d.delivery.endpoint_id for d in deliveries] == [ops_id]
        assert [body["type"] for body in world.received(OPS)] == ["webhook.disabled"]

    simulate(scenario)


def test_an_auto_disable_is_noticed_with_its_reason() -> None:
    """An endpoint failing for longer than the auto-disable rule is disabled, and webhook.disabled
    (reason failing, with when it began failing) is published with it."""

    async def scenario(world: World) -> None:
        world.service = WebhookService(
            world.store,
            world.clock,
            SequentialIds(),
            SeededRandom(5),
            ServiceSettings(
                endpoint_rules=world.service.ports.settings.endpoint_rules.__class__(
                    auto_disable_after=timedelta(seconds=2)
                ),
                retry=RetryPolicy(delays=(timedelta(seconds=1), timedelta(seconds=2))),
            ),
        )
        await world.register(OPS, NOTICES)
        dead = await world.register(DEAD, ["deal.attributed"])
        await world.run(60, lambda: world.service.publish("acct_1", NewEvent("deal.attributed", DEAL)))
        [notice] = await world.notices("webhook.disabled")
        data = json.loads(notice.body)["data"]
        assert data["webhookId"] == dead
        assert data["reason"] == "failing"
        assert data["failingSince"]
        assert "webhook.disabled" in [body["type"] for body in world.received(OPS)]

    simulate(scenario)


def test_a_flapping_endpoint_is_noticed_once_per_cool_down() -> None:
    """An endpoint failing after each success publishes webhook.failing once in its cool-down."""

    async def scenario(world: World) -> None:
        world.network.routes[FLAKY] = Route(latency=(0.01, 0.01), failure_rate=0.5, failures=("500",))
        await world.register(OPS, NOTICES)
        await world.register(FLAKY, ["deal.attributed"])

        async def publish_every_minute() -> None:
            for n in range(90):
                await world.service.publish(
                    "acct_1", NewEvent("deal.attributed", {**DEAL, "dealId": f"d{n}"})
                )
                await world.clock.sleep(60)

        await world.run(60, publish_every_minute)
        notices = await world.notices("webhook.failing")
        times = [n.published_at for n in notices]
        assert 1 <= len(times) <= 2  # 90 minutes: the first, and one an hour later at most
        assert all(b - a >= timedelta(hours=1) for a, b in itertools.pairwise(times))

    simulate(scenario)
