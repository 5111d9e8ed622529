"""The delivery loop on virtual time: limits, wake-ups, group commit, shutdown and crashes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.app.services import NewEvent, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.testing import (
    FakeNetwork,
    LoopClock,
    Route,
    SeededRandom,
    SequentialIds,
    run_virtual,
)

T = TypeVar("T")
SLOW = "https://slow.example/hook"
FAST = "https://fast.example/hook"


class World:
    """A service, a fake network with a slow and a fast receiver, and a way to run dispatchers."""

    def __init__(self) -> None:
        self.clock = LoopClock()
        self.store = MemoryStore()
        self.network = FakeNetwork(self.clock, random.Random(3))
        self.network.routes[SLOW] = Route(latency=(1.0, 1.0))
        self.network.routes[FAST] = Route(latency=(0.01, 0.01))
        self.service = WebhookService(self.store, self.clock, SequentialIds(), SeededRandom(3))

    def dispatcher(self, **settings: object) -> Dispatcher:
        options: dict[str, object] = {"poll_interval": timedelta(seconds=60)}
        options.update(settings)
        return Dispatcher.beside(self.service, self.network, HmacSigner(), DispatchSettings(**options))  # type: ignore[arg-type]

    async def endpoint(self, url: str) -> str:
        view = await self.service.register_endpoint("acct_1", url, ["deal.attributed"])
        return view.endpoint.endpoint_id

    async def publish(self, count: int) -> None:
        for n in range(count):
            await self.service.publish("acct_1", NewEvent("deal.attributed", {"n": n}))


def simulate(test: Callable[[World], Awaitable[T]]) -> T:
    return run_virtual(lambda: test(World()))


def test_a_publish_wakes_the_dispatcher_at_once() -> None:
    """With a minute between polls, the first attempt still starts the instant the event is published."""

    async def scenario(world: World) -> None:
        await world.endpoint(FAST)
        stop = asyncio.Event()
        running = asyncio.ensure_future(world.dispatcher().run(stop))
        await world.clock.sleep(30)
        published_at = world.clock.now()
        await world.publish(1)
        await world.clock.sleep(1)
        assert [sent.started_at for sent in world.network.requests] == [published_at]
        stop.set()
        await running

    simulate(scenario)


def test_a_slow_endpoint_gets_its_share_and_no_more() -> None:
    """Per-endpoint limit 2: never more than two requests in flight to the slow endpoint, and the
    fast endpoint's delivery is not kept waiting behind the slow one's backlog."""

    async def scenario(world: World) -> None:
        await world.endpoint(SLOW)
        await world.publish(20)
        await world.endpoint(FAST)
        await world.publish(1)  # one more for each endpoint
        dispatcher = world.dispatcher(concurrency=4, per_endpoint_concurrency=2, claim_batch=50)
        stop = asyncio.Event()
        running = asyncio.ensure_future(dispatcher.run(stop))
        await world.clock.sleep(60)
        slow = [sent for sent in world.network.requests if sent.url == SLOW]
        fast = [sent for sent in world.network.requests if sent.url == FAST]
        assert len(slow) == 21
        assert fast[0].started_at - world.clock.start < timedelta(seconds=1.5)
        for sent in slow:
            overlapping = [
                other
                for other in slow
                if other.started_at <= sent.started_at < (other.finished_at or world.clock.now())
            ]
            assert len(overlapping) <= 2
        stop.set()
        await running

    simulate(scenario)


def test_outcomes_are_recorded_in_batches() -> None:
    """Attempts that finish together share a transaction (group commit)."""

    async def scenario(world: World) -> None:
        await world.endpoint(FAST)
        await world.publish(200)
        dispatcher = world.dispatcher(concurrency=100, per_endpoint_concurrency=100, claim_batch=100)
        stop = asyncio.Event()
        running = asyncio.ensure_future(dispatcher.run(stop))
        await world.clock.sleep(10)
        stop.set()
        await running
        assert dispatcher.stats.succeeded == 200
        assert dispatcher.stats.transactions <= 10

    simulate(scenario)


def test_graceful_shutdown_leaves_nothing_leased() -> None:
    """Stopping lets short attempts finish, cuts long ones at the grace period, records every
    outcome, and hands every unfinished lease back: a new worker can claim them at once."""

    async def scenario(world: World) -> None:
        await world.endpoint(SLOW)
        world.network.routes[SLOW] = Route(latency=(30.0, 30.0))  # longer than the grace period
        await world.endpoint(FAST)
        await world.publish(3)
        dispatcher = world.dispatcher(shutdown_grace=timedelta(seconds=5), per_endpoint_concurrency=1)
        stop = asyncio.Event()
        running = asyncio.ensure_future(dispatcher.run(stop))
        await world.clock.sleep(2)
        stop.set()
        await running
        assert dispatcher.busy == 0
        succeeded = await world.store.deliveries("acct_1", statuses=[DeliveryStatus.SUCCEEDED])
        assert len(succeeded) == 3  # the fast endpoint's
        claimable = await world.store.claim(world.clock.now(), 100, timedelta(seconds=60))
        assert len(claimable) == 3  # the slow endpoint's, handed back unattempted or cut short

    simulate(scenario)


def test_after_a_crash_leases_expire_and_another_worker_delivers() -> None:
    """A worker that dies mid-flight writes nothing more; its deliveries are retried once its
    leases run out, by whoever claims next."""

    async def scenario(world: World) -> None:
        await world.endpoint(SLOW)
        await world.publish(2)
        first = world.dispatcher(lease=timedelta(seconds=40))
        crashed = asyncio.ensure_future(first.run())
        await world.clock.sleep(0.5)
        crashed.cancel()  # a crash: no graceful shutdown
        await asyncio.gather(crashed, return_exceptions=True)
        assert await world.store.claim(world.clock.now(), 100, timedelta(seconds=60)) == []
        second = world.dispatcher()
        stop = asyncio.Event()
        running = asyncio.ensure_future(second.run(stop))
        await world.clock.sleep(45)
        stop.set()
        await running
        assert second.stats.succeeded == 2
        started = sorted(sent.started_at - world.clock.start for sent in world.network.requests)
        assert started[2] >= timedelta(seconds=40)  # not before the crashed worker's lease ran out

    simulate(scenario)


def test_a_delivery_waiting_for_a_slot_is_not_sent_once_another_process_disabled_its_endpoint() -> None:
    """Deliveries claimed but waiting for their endpoint's slot hold a copy of the endpoint: if an
    API node elsewhere disables it meanwhile (no in-process notice), they are held, not sent."""

    async def scenario(world: World) -> None:
        endpoint_id = await world.endpoint(SLOW)
        await world.publish(2)
        dispatcher = world.dispatcher(per_endpoint_concurrency=1, claim_batch=10)
        stop = asyncio.Event()
        running = asyncio.ensure_future(dispatcher.run(stop))
        await world.clock.sleep(0.1)  # the first is in flight, the second waits for its slot
        elsewhere = WebhookService(world.store, world.clock, SequentialIds(), SeededRandom(9))
        await elsewhere.disable_endpoint("acct_1", endpoint_id)
        await world.clock.sleep(5)
        stop.set()
        await running
        assert len(world.network.requests) == 1
        held = await world.store.deliveries("acct_1", statuses=[DeliveryStatus.HELD])
        assert len(held) == 1

    simulate(scenario)


def test_a_change_in_this_process_reaches_waiting_deliveries_at_once() -> None:
    """Disabling through this process's service hands waiting deliveries back immediately: they
    are held within the same instant, not when the endpoint's slot frees up a second later."""

    async def scenario(world: World) -> None:
        endpoint_id = await world.endpoint(SLOW)
        await world.publish(2)
        dispatcher = world.dispatcher(per_endpoint_concurrency=1, claim_batch=10)
        stop = asyncio.Event()
        running = asyncio.ensure_future(dispatcher.run(stop))
        await world.clock.sleep(0.1)
        await world.service.disable_endpoint("acct_1", endpoint_id)
        await world.clock.sleep(0.1)  # the request in flight still has 0.8 s to go
        held = await world.store.deliveries("acct_1", statuses=[DeliveryStatus.HELD])
        assert len(held) == 1
        stop.set()
        await running

    simulate(scenario)
