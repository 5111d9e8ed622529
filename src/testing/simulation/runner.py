"""Running a scenario: the real use cases and workers on a virtual-time loop, a fake network,
and operators and crashes acting at the scenario's moments."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta

from attrs import define

from ...adapters.memory import MemoryStore
from ...adapters.signing import HmacSigner
from ...app.services import NewEvent, ServiceSettings, WebhookService
from ...app.worker import Dispatcher, DispatchSettings
from ...core import endpoint as ep
from ...core.delivery import DeliveryStatus
from ...core.errors import DomainError
from ...core.ports import Clock, RecordedEvent, Storage
from ..fakes import EPOCH, FakeNetwork, LoopClock, SeededRandom, SequentialIds
from ..loop import run_virtual
from .invariants import check
from .result import Crash, SimulationResult
from .retention import purge_and_check
from .scenarios import Action, Scenario, draw_scenario

__all__ = ["run_scenario", "simulate"]


@define
class _Worker:
    """One worker process: a dispatcher task that can crash (be cancelled) and be restarted."""

    service: WebhookService
    network: FakeNetwork
    settings: DispatchSettings
    dispatcher: Dispatcher | None = None
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event | None = None

    def start(self) -> None:
        self.dispatcher = Dispatcher.beside(self.service, self.network, HmacSigner(), self.settings)
        self.stop = asyncio.Event()
        self.task = asyncio.ensure_future(self.dispatcher.run(self.stop))

    async def crash(self) -> None:
        """Die at once: nothing more is written, leases are left to expire."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.task = None

    async def shutdown(self) -> None:
        assert self.task is not None
        assert self.stop is not None
        self.stop.set()
        await self.task
        self.task = None

    @property
    def idle(self) -> bool:
        return self.task is None or (self.dispatcher is not None and self.dispatcher.busy == 0)


async def run_scenario(
    scenario: Scenario, store_factory: Callable[[], Awaitable[Storage]] | None = None
) -> SimulationResult:
    """Run ``scenario`` on the running (virtual-time) loop."""
    clock = LoopClock(EPOCH)
    store: Storage = await store_factory() if store_factory else MemoryStore()
    network = FakeNetwork(clock, random.Random(scenario.seed * 7919 + 1))
    settings = ServiceSettings(
        endpoint_rules=ep.EndpointRules(auto_disable_after=scenario.auto_disable_after), retry=scenario.retry
    )
    ids = SequentialIds()
    service = WebhookService(store, clock, ids, SeededRandom(scenario.seed), settings)
    # Worker 0 runs in the API's process and hears of its changes at once; the others are
    # separate processes that learn of new work and changed endpoints from the store only.
    workers = [
        _Worker(
            service
            if number == 0
            else WebhookService(store, clock, ids, SeededRandom(scenario.seed + number), settings),
            network,
            scenario.dispatch,
        )
        for number in range(scenario.workers)
    ]
    endpoint_ids: dict[int, str] = {}
    issued: dict[str, list[str]] = {}
    crashes: list[Crash] = []
    pending_registrations = sorted(
        range(len(scenario.endpoints)), key=lambda i: scenario.endpoints[i].register_at
    )
    timeline = sorted(
        [Action(scenario.endpoints[i].register_at, "register", (i,)) for i in pending_registrations]
        + list(scenario.actions),
        key=lambda action: (action.at, action.kind != "register"),
    )
    for worker in workers:
        worker.start()
    restarts: list[asyncio.Task[None]] = []
    for action in timeline:
        wait = action.at - (clock.now() - EPOCH).total_seconds()
        if wait > 0:
            await clock.sleep(wait)
        await _apply(action, scenario, service, workers, network, endpoint_ids, issued, crashes, restarts)
    await asyncio.gather(*restarts)
    settled = await _settle(service, workers, clock)
    for worker in workers:
        await worker.shutdown()
    log = list(await _read_everything(store))
    result = SimulationResult(
        scenario, log, network.requests, crashes, endpoint_ids, settled, issued_secrets=issued
    )
    # Last, once the log is read: retention at the end of the run removes only finished history.
    result.retention_violations = await purge_and_check(store, log, clock.now())
    return result


async def _read_everything(store: Storage) -> list[RecordedEvent]:
    everything: list[RecordedEvent] = []
    while True:
        page = await store.read_all(after=len(everything), limit=10_000)
        if not page:
            return everything
        everything.extend(page)


async def _apply(
    action: Action,
    scenario: Scenario,
    service: WebhookService,
    workers: list[_Worker],
    network: FakeNetwork,
    endpoint_ids: dict[int, str],
    issued: dict[str, list[str]],
    crashes: list[Crash],
    restarts: list[asyncio.Task[None]],
) -> None:
    clock = service.ports.clock
    try:
        if action.kind == "register":
            (index,) = action.args
            plan = scenario.endpoints[index]
            view = await service.register_endpoint(
                plan.account,
                plan.url,
                plan.event_types,
                standard_webhooks=plan.standard_webhooks,
                ordered=plan.ordered,
                rate_limit=plan.rate_limit,
                rate_limit_burst=plan.rate_limit_burst,
                circuit_breaker_threshold=plan.breaker_threshold,
            )
            endpoint_ids[index] = view.endpoint.endpoint_id
            issued.setdefault(view.endpoint.endpoint_id, []).append(view.endpoint.secret)
            network.routes[plan.url] = plan.route
        elif action.kind == "publish":
            account, event_type, data, event_id = action.args
            await service.publish(account, NewEvent(event_type, data, event_id))
        elif action.kind == "republish":
            (event_id,) = action.args
            for publish in scenario.actions:
                if publish.kind == "publish" and publish.args[3] == event_id:
                    account, event_type, data, _ = publish.args
                    await service.publish(account, NewEvent(event_type, data, event_id))
        elif action.kind == "crash":
            index, downtime = action.args
            worker = workers[index]
            if worker.task is None:
                return  # still down from an earlier crash
            await worker.crash()
            crashes.append(Crash(clock.now(), clock.now() + timedelta(seconds=downtime)))
            restarts.append(asyncio.ensure_future(_restart_later(worker, clock, downtime)))
        elif action.kind == "restart":
            worker = workers[action.args[0]]
            if worker.task is not None:
                stopping_at = clock.now()
                await worker.shutdown()
                crashes.append(Crash(stopping_at, clock.now(), graceful=True))
                worker.start()
        else:
            await _operate(action, scenario, service, endpoint_ids, issued)
    except DomainError:
        pass  # e.g. the endpoint was deleted earlier: operators get errors too


async def _restart_later(worker: _Worker, clock: Clock, downtime: float) -> None:
    await clock.sleep(downtime)
    worker.start()


async def _operate(
    action: Action,
    scenario: Scenario,
    service: WebhookService,
    endpoint_ids: dict[int, str],
    issued: dict[str, list[str]],
) -> None:
    index = action.args[0]
    if index not in endpoint_ids:
        return
    endpoint_id = endpoint_ids[index]
    account = scenario.endpoints[index].account
    if action.kind == "disable":
        await service.disable_endpoint(account, endpoint_id)
    elif action.kind == "enable":
        await service.enable_endpoint(account, endpoint_id)
    elif action.kind == "delete":
        await service.delete_endpoint(account, endpoint_id)
    elif action.kind == "update":
        await service.update_endpoint(account, endpoint_id, event_types=action.args[1])
    elif action.kind == "order":
        await service.update_endpoint(account, endpoint_id, ordered=action.args[1])
    elif action.kind == "rotate":
        rotated = await service.rotate_secret(account, endpoint_id, grace=timedelta(seconds=action.args[1]))
        issued.setdefault(endpoint_id, []).append(rotated.endpoint.secret)
    elif action.kind == "test":
        await service.send_test(account, endpoint_id, action.args[1])
    elif action.kind == "redeliver":
        finished = await service.ports.store.deliveries(
            account, endpoint_id=endpoint_id, statuses=(DeliveryStatus.FAILED, DeliveryStatus.SUCCEEDED)
        )
        if finished:
            target = finished[int(action.args[1] * len(finished))]
            await service.redeliver(account, target.delivery.delivery_id)
    elif action.kind == "recover":
        since = service.ports.clock.now() - timedelta(seconds=action.args[1] * 4 * 3600)
        await service.recover(account, endpoint_id, since)


async def _settle(service: WebhookService, workers: list[_Worker], clock: LoopClock) -> bool:
    """Let time pass until nothing is pending and every worker is idle (bounded: two days)."""
    deadline = clock.now() + timedelta(days=2)
    while clock.now() < deadline:
        next_due = await service.ports.store.next_due()
        if next_due is None and all(worker.idle for worker in workers):
            return True
        wait = 60.0 if next_due is None else max((next_due - clock.now()).total_seconds(), 0.0) + 1.0
        await clock.sleep(min(wait, 3600.0))
    return False


def simulate(seed: int, store_factory: Callable[[], Awaitable[Storage]] | None = None) -> SimulationResult:
    """Draw, run and check the scenario of ``seed``."""
    scenario = draw_scenario(seed)
    result = run_virtual(lambda: run_scenario(scenario, store_factory))
    result.violations = check(result)
    return result
