"""The deterministic simulation: the real delivery engine against a fake clock and a fake network.

A seed draws a whole scenario: accounts and endpoints with their subscriptions, receivers that
are healthy, flaky, slow, down for a while or dead, a stream of published events, operators
disabling, enabling, deleting, re-subscribing, rotating secrets and redelivering, and engine
crashes (the dispatcher is cancelled mid-flight and restarted after a downtime). It all runs on
``VirtualTimeLoop``, so hours of retries take milliseconds, and the same seed gives the same event
log byte for byte. ``check`` then verifies the invariants on the event log and the network's
record of every request.

Replay one seed::

    python -m attribution_webhooks.testing.simulation --seed 1234 --verbose
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import random
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
from attrs import define, field, frozen

from ..adapters.memory import MemoryStore
from ..adapters.signing import HmacSigner
from ..app.services import NewEvent, ServiceSettings, WebhookService
from ..app.worker import Dispatcher, DispatchSettings
from ..core import endpoint as ep
from ..core.catalog import EVENT_TYPES
from ..core.delivery import DeliveryStatus
from ..core.errors import DomainError
from ..core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryCancelled,
    DeliveryFailed,
    DeliveryHeld,
    DeliveryReleased,
    DeliveryScheduled,
    DisableReason,
    DomainEvent,
    EndpointDeleted,
    EndpointDisabled,
    EndpointEnabled,
    EndpointEvent,
    EndpointRegistered,
    EndpointUpdated,
    EventPublished,
    RedeliveryRequested,
    RetryScheduled,
    SecretRotated,
    time_of,
)
from ..core.outcomes import HttpResponse, TransportFailure
from ..core.ports import Clock, RecordedEvent, Storage
from ..core.retry import RetryPolicy
from ..core.samples import SAMPLE_DATA
from ..core.wire import JsonValue
from .fakes import EPOCH, FAILURES, FakeNetwork, LoopClock, Route, SeededRandom, SentRequest, SequentialIds
from .loop import run_virtual

__all__ = ["Scenario", "SimulationResult", "check", "draw_scenario", "main", "run_scenario", "simulate"]

TOLERANCE = timedelta(seconds=1)  # "to the second"
ACCOUNTS = ("acct_a", "acct_b")


# --- scenarios ------------------------------------------------------------------------------------


@frozen
class EndpointPlan:
    account: str
    url: str
    event_types: tuple[str, ...]
    standard_webhooks: bool
    route: Route
    register_at: float


@frozen
class Action:
    """Something that happens at ``at`` seconds: ``kind`` with its arguments."""

    at: float
    kind: str
    args: tuple[Any, ...] = ()


@frozen
class Scenario:
    seed: int
    endpoints: tuple[EndpointPlan, ...]
    actions: tuple[Action, ...]
    workers: int
    retry: RetryPolicy
    dispatch: DispatchSettings
    auto_disable_after: timedelta
    strict_timing: bool

    def describe(self) -> str:
        dispatch = self.dispatch
        lines = [
            f"seed {self.seed}: {len(self.endpoints)} endpoints, {len(self.actions)} actions, "
            f"{self.workers} workers",
            f"  concurrency {dispatch.concurrency}/{dispatch.per_endpoint_concurrency} per endpoint, "
            f"jitter {self.retry.jitter}, auto-disable after {self.auto_disable_after}",
        ]
        for index, plan in enumerate(self.endpoints):
            route = plan.route
            outages = ", ".join(f"{_offset(a)} to {_offset(b)}" for a, b in route.outages) or "none"
            lines.append(
                f"  endpoint #{index} {plan.account} {','.join(plan.event_types)} "
                f"at +{plan.register_at:.0f}s: fails {route.failure_rate:.0%} "
                f"({'/'.join(route.failures)}), outages {outages}"
            )
        return "\n".join(lines)


def _offset(moment: datetime) -> str:
    return f"+{(moment - EPOCH).total_seconds():.0f}s"


def _random_data(rng: random.Random, event_type: str) -> dict[str, JsonValue]:
    data: dict[str, Any] = json.loads(json.dumps(SAMPLE_DATA[event_type]))
    names = ["Acme Corp", "Société Générale", "日本の会社", "Zürich AG 🚀", 'Quote "Inc"', "Line\nBreak"]
    if event_type == "deal.attributed":
        data["dealId"] = f"deal_{rng.randrange(10**6)}"
        data["amount"] = rng.choice([10000, 99.99, 2**53 - 1, 0.1, 1e21, 1234567.891])
        data["attribution"][0]["partnerName"] = rng.choice(names)
        data["attribution"][0]["percentage"] = rng.choice([50, 33.33, 12.5])
    elif event_type in ("partner.created", "partner.updated"):
        data["name"] = rng.choice(names)
    else:
        data["userId"] = f"user_{rng.randrange(10**6)}"
    return data


def draw_scenario(seed: int) -> Scenario:
    """Everything that will happen in the run of ``seed``, drawn up front."""
    rng = random.Random(seed)
    endpoints: list[EndpointPlan] = []
    for index in range(rng.randint(1, 5)):
        kind = rng.choice(["healthy", "healthy", "flaky", "outage", "outage", "dead", "slow"])
        outages: list[tuple[datetime, datetime]] = []
        if kind == "outage":
            for _ in range(rng.randint(1, 2)):
                start = rng.uniform(0, 3 * 3600)
                outages.append(
                    (
                        EPOCH + timedelta(seconds=start),
                        EPOCH + timedelta(seconds=start + rng.uniform(60, 2 * 3600)),
                    )
                )
        route = Route(
            latency=(0.001, rng.choice([0.05, 0.5, 20.0 if kind == "slow" else 2.0])),
            failure_rate={"healthy": 0.0, "flaky": rng.uniform(0.2, 0.7), "dead": 1.0}.get(kind, 0.05),
            failures=tuple(rng.sample(FAILURES, rng.randint(1, 3))),
            outages=tuple(outages),
            outage_failure=rng.choice(["refused", "503", "timeout", "500"]),
            retry_after=rng.choice([None, 30.0, 600.0, 7200.0]),
        )
        endpoints.append(
            EndpointPlan(
                account=rng.choice(ACCOUNTS),
                url=f"https://receiver-{index}.example/hooks",
                event_types=tuple(rng.sample(EVENT_TYPES, rng.randint(1, len(EVENT_TYPES)))),
                standard_webhooks=rng.random() < 0.3,
                route=route,
                register_at=0.0 if rng.random() < 0.8 else rng.uniform(0, 3600),
            )
        )
    horizon = 3 * 3600
    actions: list[Action] = []
    published_ids: list[str] = []
    for number in range(rng.randint(5, 40)):
        event_type = rng.choice(EVENT_TYPES)
        event_id = f"evt_sim{number}" if rng.random() < 0.5 else None
        if event_id is not None:
            published_ids.append(event_id)
        actions.append(
            Action(
                rng.uniform(0, horizon),
                "publish",
                (rng.choice(ACCOUNTS), event_type, _random_data(rng, event_type), event_id),
            )
        )
    for _ in range(rng.choice([0, 0, 1, 3])):
        # Many events at one instant (a batch import) keep endpoints saturated for a while;
        # an operator acting just then meets deliveries that wait for a slot.
        at, account = rng.uniform(0, horizon), rng.choice(ACCOUNTS)
        for _ in range(rng.randint(5, 30)):
            event_type = rng.choice(EVENT_TYPES)
            actions.append(Action(at, "publish", (account, event_type, _random_data(rng, event_type), None)))
        if rng.random() < 0.5:
            kind = rng.choice(["disable", "delete", "update", "rotate"])
            target = rng.randrange(len(endpoints))
            extra: dict[str, tuple[Any, ...]] = {"update": (("partner.created",),), "rotate": (0.0,)}
            actions.append(Action(at + rng.uniform(0.001, 5.0), kind, (target, *extra.get(kind, ()))))
    if published_ids and rng.random() < 0.3:
        actions.append(Action(rng.uniform(0, horizon), "republish", (rng.choice(published_ids),)))
    for _ in range(rng.randint(0, 6)):
        target = rng.randrange(len(endpoints))
        kind = rng.choice(
            ["disable", "enable", "enable", "update", "rotate", "redeliver", "recover", "delete", "test"]
        )
        at = rng.uniform(0, horizon + 3600)
        args: tuple[Any, ...]
        if kind == "update":
            args = (target, tuple(rng.sample(EVENT_TYPES, rng.randint(1, len(EVENT_TYPES)))))
        elif kind == "rotate":
            args = (target, rng.choice([0.0, 600.0, 86400.0]))
        elif kind in ("redeliver", "recover"):
            args = (target, rng.random())
        elif kind == "test":
            args = (target, rng.choice(EVENT_TYPES))
        else:
            args = (target,)
        actions.append(Action(at, kind, args))
    workers = rng.choice([1, 1, 2])
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        downtime = rng.choice([1.0, 30.0, 300.0, 1200.0])
        actions.append(Action(rng.uniform(0, horizon + 3600), "crash", (rng.randrange(workers), downtime)))
    if rng.random() < 0.2:
        actions.append(Action(rng.uniform(0, horizon), "restart", (rng.randrange(workers),)))
    strict = rng.random() < 0.7
    dispatch = DispatchSettings(
        concurrency=1000 if strict else rng.randint(2, 8),
        per_endpoint_concurrency=1000 if strict else rng.randint(1, 3),
        claim_batch=rng.choice([1, 7, 128]),
        poll_interval=timedelta(seconds=60),
    )
    retry = RetryPolicy(jitter=rng.choice([0.0, 0.0, 0.0, 0.1]))
    auto_disable_after = rng.choice([timedelta(days=3), timedelta(minutes=30), timedelta(hours=2)])
    return Scenario(
        seed,
        tuple(endpoints),
        tuple(sorted(actions, key=lambda action: action.at)),
        workers,
        retry,
        dispatch,
        auto_disable_after,
        strict,
    )


# --- running ----------------------------------------------------------------------------------------


@frozen
class Crash:
    """A worker was down from ``at`` to ``back_at``: crashed, or stopping gracefully to restart."""

    at: datetime
    back_at: datetime
    graceful: bool = False


@define
class SimulationResult:
    scenario: Scenario
    log: list[RecordedEvent]
    requests: list[SentRequest]
    crashes: list[Crash]
    endpoint_ids: dict[int, str]
    settled: bool
    violations: list[str] = field(factory=list)
    # Each endpoint's secrets as the service issued them, in order: the log keeps only the live
    # ones (a secret that stopped signing reads as "", ADR 0010), the checker needs them all.
    issued_secrets: dict[str, list[str]] = field(factory=dict)

    def fingerprint(self) -> str:
        """A digest of the whole event log and request record: equal runs, equal digests."""
        digest = hashlib.sha256()
        for recorded in self.log:
            digest.update(repr(recorded).encode())
        for sent in self.requests:
            digest.update(repr((sent.started_at, sent.url, sent.body, sent.outcome)).encode())
        return digest.hexdigest()


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
    return SimulationResult(
        scenario, log, network.requests, crashes, endpoint_ids, settled, issued_secrets=issued
    )


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
    clock = service.clock
    try:
        if action.kind == "register":
            (index,) = action.args
            plan = scenario.endpoints[index]
            view = await service.register_endpoint(
                plan.account, plan.url, plan.event_types, standard_webhooks=plan.standard_webhooks
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
    elif action.kind == "rotate":
        rotated = await service.rotate_secret(account, endpoint_id, grace=timedelta(seconds=action.args[1]))
        issued.setdefault(endpoint_id, []).append(rotated.endpoint.secret)
    elif action.kind == "test":
        await service.send_test(account, endpoint_id, action.args[1])
    elif action.kind == "redeliver":
        finished = await service.store.deliveries(
            account, endpoint_id=endpoint_id, statuses=(DeliveryStatus.FAILED, DeliveryStatus.SUCCEEDED)
        )
        if finished:
            target = finished[int(action.args[1] * len(finished))]
            await service.redeliver(account, target.delivery.delivery_id)
    elif action.kind == "recover":
        since = service.clock.now() - timedelta(seconds=action.args[1] * 4 * 3600)
        await service.recover(account, endpoint_id, since)


async def _settle(service: WebhookService, workers: list[_Worker], clock: LoopClock) -> bool:
    """Let time pass until nothing is pending and every worker is idle (bounded: two days)."""
    deadline = clock.now() + timedelta(days=2)
    while clock.now() < deadline:
        next_due = await service.store.next_due()
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


# --- invariants ------------------------------------------------------------------------------------
#
# The checker keeps its own model of endpoints and retries instead of reusing the core's
# evolve functions and retry policy, so that a bug there cannot hide itself.


@define
class _Subscription:
    """What the checker believes an endpoint was at some moment."""

    account: str = ""
    url: str = ""
    types: tuple[str, ...] = ()
    status: str = "new"
    secret: str = ""
    previous: str | None = None
    previous_until: datetime | None = None
    standard: bool = False

    def secrets_at(self, moment: datetime) -> list[str]:
        valid = [self.secret]
        if self.previous is not None and self.previous_until is not None and moment < self.previous_until:
            valid.append(self.previous)
        return valid


def _replay(events: Sequence[EndpointEvent]) -> _Subscription:
    sub = _Subscription()
    for event in events:
        if isinstance(event, EndpointRegistered):
            sub = _Subscription(
                event.account_id,
                event.url,
                event.event_types,
                "enabled",
                event.secret,
                None,
                None,
                event.standard_webhooks,
            )
        elif isinstance(event, EndpointUpdated):
            sub.url = event.url if event.url is not None else sub.url
            sub.types = event.event_types if event.event_types is not None else sub.types
            sub.standard = event.standard_webhooks if event.standard_webhooks is not None else sub.standard
        elif isinstance(event, SecretRotated):
            sub.previous, sub.previous_until, sub.secret = sub.secret, event.previous_expires_at, event.secret
        elif isinstance(event, EndpointDisabled):
            sub.status = "disabled"
        elif isinstance(event, EndpointEnabled):
            sub.status = "enabled"
        elif isinstance(event, EndpointDeleted):
            sub.status = "deleted"
    return sub


@define
class _EndpointHistory:
    """An endpoint's events with their global positions, to ask what it was at any moment."""

    events: list[tuple[int, EndpointEvent]] = field(factory=list)

    def before(self, position: int) -> _Subscription:
        return _replay([event for pos, event in self.events if pos < position])

    def at(self, moment: datetime) -> _Subscription:
        return _replay([event for _, event in self.events if time_of(event) <= moment])

    def final(self) -> _Subscription:
        return _replay([event for _, event in self.events])

    def disabled_between(self, start: datetime, end: datetime) -> bool:
        """Was it disabled or deleted at any moment in [start, end]?"""
        if self.at(start).status != "enabled":
            return True
        return any(
            isinstance(event, EndpointDisabled | EndpointDeleted) and start <= time_of(event) <= end
            for _, event in self.events
        )


@define
class _Record:
    """The run, indexed for the checks."""

    result: SimulationResult
    histories: dict[str, _EndpointHistory] = field(factory=dict)
    published: dict[str, EventPublished] = field(factory=dict)
    streams: dict[str, list[tuple[int, DomainEvent]]] = field(factory=dict)
    requests: dict[tuple[str, int], list[SentRequest]] = field(factory=dict)

    @classmethod
    def of(cls, result: SimulationResult) -> _Record:
        record = cls(result)
        for recorded in result.log:
            event = recorded.event
            if isinstance(event, EndpointEvent.__args__):
                history = record.histories.setdefault(event.endpoint_id, _EndpointHistory())
                if isinstance(event, EndpointRegistered | SecretRotated) and event.secret == "":
                    # Shredded in the log: the checker still knows what was issued.
                    nth = sum(isinstance(e, EndpointRegistered | SecretRotated) for _, e in history.events)
                    event = attrs.evolve(event, secret=result.issued_secrets[event.endpoint_id][nth])
                history.events.append((recorded.position, event))
            elif isinstance(event, EventPublished):
                record.published[f"{event.account_id}/{event.event_id}"] = event
            else:
                record.streams.setdefault(recorded.stream_id, []).append((recorded.position, event))
        for sent in result.requests:
            key = (sent.headers["X-Attribution-Delivery-Id"], int(sent.headers["X-Attribution-Attempt"]))
            record.requests.setdefault(key, []).append(sent)
        return record

    def sent(self, delivery_id: str, attempt: AttemptSucceeded | AttemptFailed) -> SentRequest | None:
        for sent in self.requests.get((delivery_id, attempt.attempt), []):
            if sent.started_at == attempt.started_at and sent.outcome is not None:
                return sent
        return None


def check(result: SimulationResult) -> list[str]:
    """Every invariant violated by the run, as readable sentences (empty: all hold)."""
    record = _Record.of(result)
    violations: list[str] = []
    if not result.settled:
        violations.append("the system did not settle within two days of the last action")
    violations += _check_fan_out(record)
    for delivery_id, events in record.streams.items():
        violations += _check_delivery(record, delivery_id, events)
    violations += _check_requests(record)
    violations += _check_held(record)
    violations += _check_auto_disable(record)
    return violations


def _check_fan_out(record: _Record) -> list[str]:
    """Each event is owed to exactly the endpoints subscribed to its type when it was published;
    to a disabled one, as a held delivery."""
    violations: list[str] = []
    log = record.result.log
    for index, recorded in enumerate(log):
        event = recorded.event
        if not isinstance(event, EventPublished):
            continue
        scheduled: dict[str, bool] = {}
        for following in log[index + 1 :]:
            if (
                not isinstance(following.event, DeliveryScheduled)
                or following.event.event_id != event.event_id
            ):
                break
            scheduled[following.event.endpoint_id] = following.event.held
        if event.test:
            if len(scheduled) != 1:
                violations.append(f"test event {event.event_id} went to {len(scheduled)} endpoints, not one")
            continue
        expected = {}
        for endpoint_id, history in record.histories.items():
            sub = history.before(recorded.position)
            if (
                sub.status in ("enabled", "disabled")
                and sub.account == event.account_id
                and event.event_type in sub.types
            ):
                expected[endpoint_id] = sub.status == "disabled"
        if scheduled != expected:
            violations.append(
                f"event {event.event_id} fanned out to {scheduled}, expected {expected} (id: held)"
            )
    return violations


def _crashed_during(crashes: Sequence[Crash], start: datetime, end: datetime) -> bool:
    return any(crash.at <= end and crash.back_at >= start for crash in crashes)


def _expected_delay(policy: RetryPolicy, attempt: int, sent: SentRequest) -> tuple[timedelta, timedelta]:
    """The bounds of the wait after failed attempt ``attempt``, by the spec's schedule
    (1 min, 5 min, 15 min, 1 h), the jitter, and a 429/503's Retry-After up to its cap."""
    spec = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))
    delay = spec[attempt - 1]
    low, high = delay * (1 - policy.jitter), delay * (1 + policy.jitter)
    outcome = sent.outcome
    if isinstance(outcome, HttpResponse) and outcome.status in (429, 503) and outcome.retry_after is not None:
        floor = min(outcome.retry_after, policy.retry_after_cap)
        low, high = max(low, floor), max(high, floor)
    return low, high


def _check_delivery(record: _Record, delivery_id: str, events: list[tuple[int, DomainEvent]]) -> list[str]:
    """Attempts follow the retry policy to the second, in order, and never after the end;
    every logged attempt is the request the network saw, with its outcome."""
    violations: list[str] = []
    scenario = record.result.scenario
    max_attempts = 5
    first = events[0][1]
    assert isinstance(first, DeliveryScheduled)
    history = record.histories[first.endpoint_id]
    where = f"delivery {delivery_id}"
    status = "held" if first.held else "pending"
    attempts = 0
    due_at: datetime | None = None if first.held else first.scheduled_at
    last: tuple[AttemptFailed, SentRequest | None] | None = None
    stopped_at: datetime | None = None  # when it was last held or cancelled
    for _, event in events[1:]:
        if isinstance(event, AttemptSucceeded | AttemptFailed):
            in_flight_when_stopped = (
                status in ("held", "cancelled") and stopped_at is not None and event.started_at <= stopped_at
            )
            if status != "pending" and not in_flight_when_stopped:
                violations.append(f"{where}: attempt {event.attempt} while {status}")
            if event.attempt != attempts + 1:
                violations.append(f"{where}: attempt {event.attempt} after attempt {attempts}")
            if event.attempt > max_attempts:
                violations.append(f"{where}: attempt {event.attempt}, beyond the spec's {max_attempts}")
            if due_at is not None and not in_flight_when_stopped:
                late = event.started_at - due_at
                if late < timedelta(0):
                    violations.append(f"{where}: attempt {event.attempt} started {-late} before it was due")
                excused = (
                    not scenario.strict_timing
                    or _crashed_during(record.result.crashes, due_at, event.started_at)
                    or history.disabled_between(due_at, event.started_at)
                )
                if late > TOLERANCE and not excused:
                    violations.append(f"{where}: attempt {event.attempt} started {late} after it was due")
            attempts = event.attempt
            sent = record.sent(delivery_id, event)
            if sent is None:
                violations.append(f"{where}: attempt {event.attempt} was logged but never sent")
            elif not _same_outcome(event, sent):
                violations.append(
                    f"{where}: attempt {event.attempt} logged as {event}, the network said {sent.outcome}"
                )
            if isinstance(event, AttemptSucceeded):
                status, due_at, last = "succeeded", None, None
            elif not in_flight_when_stopped:
                last = (event, sent)
        elif isinstance(event, RetryScheduled):
            if last is None or event.attempt != attempts + 1:
                violations.append(
                    f"{where}: retry {event.attempt} scheduled without a failed attempt {attempts}"
                )
            elif last[1] is not None and last[1].finished_at is not None:
                low, high = _expected_delay(scenario.retry, attempts, last[1])
                delay = event.due_at - last[1].finished_at
                slack = timedelta(microseconds=2)
                if not low - slack <= delay <= high + slack:
                    violations.append(
                        f"{where}: attempt {event.attempt} due {delay} after attempt {attempts} failed, "
                        f"the policy says {low}..{high}"
                    )
            status, due_at, last = "pending", event.due_at, None
        elif isinstance(event, DeliveryFailed):
            if attempts != max_attempts or last is None:
                violations.append(
                    f"{where}: failed after {attempts} attempts, not {max_attempts} failed ones"
                )
            status, due_at = "failed", None
        elif isinstance(event, DeliveryHeld):
            if status != "pending":
                violations.append(f"{where}: held while {status}")
            status, due_at, stopped_at = "held", None, event.held_at
        elif isinstance(event, DeliveryReleased):
            if status != "held":
                violations.append(f"{where}: released while {status}")
            status, due_at = "pending", event.released_at
        elif isinstance(event, RedeliveryRequested):
            if status not in ("succeeded", "failed"):
                violations.append(f"{where}: redelivered while {status}")
            status, attempts, due_at = "pending", 0, event.requested_at
        elif isinstance(event, DeliveryCancelled):
            if history.final().status != "deleted":
                violations.append(f"{where}: cancelled although its endpoint was not deleted")
            status, due_at, stopped_at = "cancelled", None, event.cancelled_at
    final = history.final()
    if status == "pending":
        violations.append(f"{where} is still pending at the end")
    if status == "held" and final.status == "enabled":
        violations.append(f"{where} is held although its endpoint is enabled")
    if status in ("pending", "held") and final.status == "deleted":
        violations.append(f"{where} is {status} although its endpoint was deleted")
    return violations


def _same_outcome(event: AttemptSucceeded | AttemptFailed, sent: SentRequest) -> bool:
    outcome = sent.outcome
    if isinstance(outcome, HttpResponse):
        return event.status_code == outcome.status and isinstance(event, AttemptSucceeded) == sent.delivered
    if isinstance(outcome, TransportFailure):
        return isinstance(event, AttemptFailed) and event.error is outcome.kind
    return False


def _check_requests(record: _Record) -> list[str]:
    """Every request goes to an enabled endpoint's URL, carries the published body, is signed
    with the secrets valid at that moment, and is in the delivery log unless a crash cut it short."""
    violations: list[str] = []
    logged = {
        (delivery_id, event.attempt, event.started_at)
        for delivery_id, events in record.streams.items()
        for _, event in events
        if isinstance(event, AttemptSucceeded | AttemptFailed)
    }
    for sent in record.result.requests:
        delivery_id = sent.headers["X-Attribution-Delivery-Id"]
        attempt = int(sent.headers["X-Attribution-Attempt"])
        scheduled = record.streams[delivery_id][0][1]
        assert isinstance(scheduled, DeliveryScheduled)
        sub = record.histories[scheduled.endpoint_id].at(sent.started_at)
        where = f"request {delivery_id}#{attempt} at {_offset(sent.started_at)}"
        if sub.status != "enabled":
            violations.append(f"{where} went to a {sub.status} endpoint")
        if sent.url != sub.url:
            violations.append(f"{where} went to {sent.url}, not the endpoint's URL {sub.url}")
        event = record.published[f"{scheduled.account_id}/{scheduled.event_id}"]
        if sent.body != event.body.encode():
            violations.append(f"{where} body differs from the published body")
        violations += [f"{where} {problem}" for problem in _signature_problems(sent, sub, event.event_id)]
        if (delivery_id, attempt, sent.started_at) not in logged:
            cut_short = sent.outcome is None or any(
                crash.at == sent.finished_at and not crash.graceful for crash in record.result.crashes
            )
            if not cut_short:
                violations.append(f"{where} finished ({sent.outcome}) but is not in the delivery log")
    return violations


def _signature_problems(sent: SentRequest, sub: _Subscription, event_id: str) -> list[str]:
    """Verify as receivers do: the spec's hex HMAC of the raw body, and Standard Webhooks."""
    problems = []
    secrets = sub.secrets_at(sent.started_at)

    def hex_mac(secret: str) -> str:
        return hmac.new(secret.encode(), sent.body, hashlib.sha256).hexdigest()

    if not hmac.compare_digest(sent.headers["X-Attribution-Signature"], hex_mac(secrets[0])):
        problems.append("does not verify with the current secret")
    previous = sent.headers.get("X-Attribution-Signature-Previous")
    if len(secrets) > 1 and previous != hex_mac(secrets[1]):
        problems.append("lacks the previous secret's signature during the grace period")
    if len(secrets) == 1 and previous is not None:
        problems.append("carries a previous-secret signature outside any grace period")
    if sub.standard:
        timestamp = sent.headers["webhook-timestamp"]
        signed = f"{event_id}.{timestamp}.".encode() + sent.body
        expected = []
        for secret in secrets:
            key = base64.b64decode(secret.removeprefix("whsec_"))
            expected.append("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode())
        if sent.headers.get("webhook-signature", "").split(" ") != expected:
            problems.append("has a wrong Standard Webhooks signature")
    elif "webhook-signature" in sent.headers:
        problems.append("has Standard Webhooks headers the endpoint did not ask for")
    return problems


def _check_held(record: _Record) -> list[str]:
    """Enabling an endpoint releases every delivery held for it."""
    violations: list[str] = []
    for delivery_id, events in record.streams.items():
        scheduled = events[0][1]
        assert isinstance(scheduled, DeliveryScheduled)
        for position, endpoint_event in record.histories[scheduled.endpoint_id].events:
            if not isinstance(endpoint_event, EndpointEnabled):
                continue
            if _held_before(events, position) and not any(
                isinstance(e, DeliveryReleased | DeliveryCancelled) for pos, e in events if pos > position
            ):
                violations.append(f"delivery {delivery_id} stayed held after its endpoint was enabled")
    return violations


def _held_before(events: list[tuple[int, DomainEvent]], position: int) -> bool:
    held = False
    for pos, event in events:
        if pos >= position:
            break
        if isinstance(event, DeliveryScheduled):
            held = event.held
        elif isinstance(event, DeliveryHeld):
            held = True
        elif isinstance(event, DeliveryReleased | DeliveryCancelled):
            held = False
    return held


def _check_auto_disable(record: _Record) -> list[str]:
    """An endpoint is disabled for failing only once every delivery to it has failed for the
    whole period; and one that keeps failing beyond the period does get disabled."""
    violations: list[str] = []
    period = record.result.scenario.auto_disable_after
    attempts_by_endpoint: dict[str, list[tuple[int, AttemptSucceeded | AttemptFailed]]] = {}
    for events in record.streams.values():
        for position, event in events:
            if isinstance(event, AttemptSucceeded | AttemptFailed):
                attempts_by_endpoint.setdefault(event.endpoint_id, []).append((position, event))
    for endpoint_id, history in record.histories.items():
        timeline = sorted(
            [(pos, e) for pos, e in attempts_by_endpoint.get(endpoint_id, [])] + list(history.events),
            key=lambda item: item[0],
        )
        since: datetime | None = None
        overdue: list[AttemptFailed] = []  # failures after the period ran out, while enabled
        enabled = False
        for _, event in timeline:
            if isinstance(event, AttemptSucceeded):
                since, overdue = None, []
            elif isinstance(event, AttemptFailed):
                since = since or event.started_at
                if enabled and event.started_at - since >= period:
                    overdue.append(event)
            elif isinstance(event, EndpointRegistered | EndpointEnabled):
                enabled, since, overdue = True, None, []
            elif isinstance(event, EndpointDisabled):
                enabled, overdue = False, []
                failing = event.reason is DisableReason.FAILING
                if failing and (
                    since is None or event.failing_since != since or event.disabled_at - since < period
                ):
                    violations.append(
                        f"endpoint {endpoint_id} disabled for failing since {event.failing_since} at "
                        f"{_offset(event.disabled_at)}; by the log it had failed since {since}"
                    )
            elif isinstance(event, EndpointDeleted):
                enabled, overdue = False, []
        later = [
            f
            for f in overdue[1:]
            if f.started_at >= overdue[0].started_at + timedelta(milliseconds=overdue[0].elapsed_ms)
        ]
        if later:
            violations.append(
                f"endpoint {endpoint_id} kept failing since {since} beyond {period} but was never disabled"
            )
    return violations


# --- command line ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run simulation seeds and check their invariants.")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--count", type=int, default=1, help="how many seeds from --seed")
    parser.add_argument("--verbose", action="store_true", help="print the scenario and its event log")
    args = parser.parse_args(argv)
    failed = 0
    for seed in range(args.seed, args.seed + args.count):
        result = simulate(seed)
        if args.verbose:
            print(result.scenario.describe())
            for recorded in result.log:
                print(f"  {recorded.position:5d} {_offset(time_of(recorded.event))} {recorded.event}")
        status = "ok" if not result.violations else f"{len(result.violations)} violations"
        print(f"seed {seed}: {len(result.log)} events, {len(result.requests)} requests: {status}")
        for violation in result.violations:
            print(f"  - {violation}")
        failed += bool(result.violations)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
