"""Crash recovery on virtual time (issue 10.8): leases are short and renewed by a heartbeat, so a
live worker keeps long attempts and a dead one's deliveries are re-sent within seconds, as a new,
numbered attempt, with the lost one in the log."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from test_dispatcher import FAST, World, simulate

from attribution_webhooks.app.services import NewEvent
from attribution_webhooks.core import delivery as dlv
from attribution_webhooks.core.outcomes import ErrorKind
from attribution_webhooks.testing import Route

HANGING = "https://hanging.example/hook"


def test_a_live_worker_keeps_its_leases_through_a_long_attempt() -> None:
    """A 20 s attempt under a 6 s lease: the heartbeat renews it, so a second worker never re-sends it."""

    async def scenario(world: World) -> None:
        world.network.routes[HANGING] = Route(latency=(20.0, 20.0))
        await world.endpoint(HANGING)
        await world.publish(1)
        stop = asyncio.Event()
        workers = [world.dispatcher(request_timeout=timedelta(seconds=30)) for _ in range(2)]
        running = [asyncio.ensure_future(w.run(stop)) for w in workers]
        await world.clock.sleep(25)
        stop.set()
        await asyncio.gather(*running)
        assert len(world.network.requests) == 1
        assert sum(w.stats.succeeded for w in workers) == 1

    simulate(scenario)


def test_a_dead_workers_delivery_is_resent_promptly_as_the_next_attempt() -> None:
    """Killed mid-attempt: another worker re-sends within the 6 s lease, as attempt 2, and the log
    shows attempt 1 as outcome unknown (worker lost)."""

    async def scenario(world: World) -> None:
        world.network.routes[HANGING] = Route(latency=(3.0, 3.0))
        await world.endpoint(HANGING)
        await world.publish(1)
        crashed = asyncio.ensure_future(world.dispatcher().run())
        await world.clock.sleep(1)
        crashed.cancel()  # SIGKILL: nothing more is written
        await asyncio.gather(crashed, return_exceptions=True)
        died_at = world.clock.now()
        stop = asyncio.Event()
        running = asyncio.ensure_future(world.dispatcher(poll_interval=timedelta(seconds=1)).run(stop))
        await world.clock.sleep(20)
        stop.set()
        await running
        first, resent = world.network.requests
        assert dict(first.headers)["X-Attribution-Attempt"] == "1"
        assert dict(resent.headers)["X-Attribution-Attempt"] == "2"
        assert resent.started_at - died_at <= timedelta(seconds=7)
        (view,) = await world.store.deliveries("acct_1")
        assert view.delivery.status is dlv.DeliveryStatus.SUCCEEDED
        log = await world.store.attempts(view.delivery.delivery_id)
        assert [(a.attempt, a.succeeded, a.error, a.detail) for a in log] == [
            (1, False, ErrorKind.WORKER_LOST, dlv.WORKER_LOST),
            (2, True, None, ""),
        ]

    simulate(scenario)


def test_a_graceful_stop_logs_the_attempts_it_cut_short() -> None:
    """Stopped with an attempt still running past the grace: the log says so, and the next worker
    sends attempt 2 at once."""

    async def scenario(world: World) -> None:
        world.network.routes[HANGING] = Route(latency=(10.0, 10.0))
        await world.endpoint(HANGING)
        await world.publish(1)
        stop = asyncio.Event()
        first = world.dispatcher(shutdown_grace=timedelta(seconds=1))
        running = asyncio.ensure_future(first.run(stop))
        await world.clock.sleep(1)
        stop.set()
        await running
        (view,) = await world.store.deliveries("acct_1")
        log = await world.store.attempts(view.delivery.delivery_id)
        assert [(a.attempt, a.error, a.detail) for a in log] == [
            (1, ErrorKind.WORKER_LOST, dlv.WORKER_STOPPED)
        ]
        due = await world.store.claim(world.clock.now(), 10, timedelta(seconds=6))
        assert [d.attempt for d in due] == [2]

    simulate(scenario)


def test_hanging_endpoints_cannot_take_a_fast_endpoints_slots() -> None:
    """Twelve hanging endpoints with 8 slots each would fill all 64; a new endpoint of another
    account still gets its probe, then its deliveries start as fast as its own limit allows."""

    async def scenario(world: World) -> None:
        world.network.routes[HANGING] = Route(latency=(15.0, 15.0))
        for _ in range(12):
            await world.endpoint(HANGING)
        await world.publish(20)
        stop = asyncio.Event()
        running = asyncio.ensure_future(world.dispatcher().run(stop))
        await world.clock.sleep(3)  # every hanging endpoint has been running too long to be trusted
        fast = await world.service.register_endpoint("acct_2", FAST, ["deal.attributed"])
        await world.service.publish("acct_2", NewEvent("deal.attributed", {"n": 1}))
        await world.clock.sleep(0.5)  # the fast endpoint is measured (one attempt), then trusted
        published_at = world.clock.now()
        for _ in range(30):
            await world.service.publish("acct_2", NewEvent("deal.attributed", {"n": 1}))
        await world.clock.sleep(1)
        to_fast = [s for s in world.network.requests if s.url == fast.endpoint.url]
        assert len(to_fast) == 31
        # 8 at a time (its own limit), 10 ms each: the last of 30 starts 30 ms after publishing.
        waits = sorted(s.started_at - published_at for s in to_fast[1:])
        assert waits[:8] == [timedelta(0)] * 8
        assert waits[-1] <= timedelta(milliseconds=40)
        stop.set()
        await running

    simulate(scenario)
