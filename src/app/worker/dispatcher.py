"""The delivery loop: claim due deliveries, send them, record outcomes, schedule retries.

One dispatcher runs per worker process. It leases due deliveries from the queue in batches,
sends them concurrently (a global limit, and a per-endpoint limit so that one slow endpoint
cannot take every slot), and records outcomes in batches: whatever finished while the previous
batch was being written goes into the next transaction (group commit), so an idle system writes
each outcome at once and a busy one amortises its transactions. It sleeps until the next
delivery is due, a publish wakes it, or ``poll_interval`` passes (for work published by other
processes). Every wait goes through the clock port, so the simulator can run it in virtual time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any

from attrs import define, field, frozen

from ...core import delivery as dlv
from ...core import endpoint as ep
from ...core.endpoint import EndpointStatus
from ...core.outcomes import ErrorKind, TransportFailure
from ...core.ports import Clock, OutboundRequest, RandomSource, Signer, Storage, Transport
from ...core.retry import RetryPolicy
from ...core.signing import delivery_headers
from ...core.views import DueDelivery
from ..services import NoticeBoard, WebhookService
from .observer import DeliveryObserver, NoObserver
from .recorder import DispatchStats, Job, Recorder

__all__ = ["DispatchSettings", "DispatchStats", "Dispatcher"]

log = logging.getLogger(__name__)

_MIN_WAIT = 0.001  # never spin: a wait is at least a millisecond
_FIRST_LATENCY_GUESS = 0.1  # seconds, for an endpoint this worker has not sent to yet
_MAX_REMEMBERED = 10_000  # endpoints whose latency and pacing a dispatcher keeps


@frozen
class DispatchSettings:
    """How hard one worker pushes. ``lease`` must comfortably exceed ``request_timeout``."""

    concurrency: int = 64
    per_endpoint_concurrency: int = 8
    claim_batch: int = 128
    lease: timedelta = timedelta(seconds=60)
    request_timeout: timedelta = timedelta(seconds=15)
    poll_interval: timedelta = timedelta(seconds=1)
    shutdown_grace: timedelta = timedelta(seconds=10)
    user_agent: str = "attribution-webhooks/0.1 (+https://github.com/attribution/webhooks)"

    def __attrs_post_init__(self) -> None:
        if self.lease < 2 * self.request_timeout:
            raise ValueError("the lease must be at least twice the request timeout")
        if self.concurrency < 1 or self.per_endpoint_concurrency < 1 or self.claim_batch < 1:
            raise ValueError("concurrency, per-endpoint concurrency and claim batch must be positive")


@define
class Dispatcher:
    """Delivers what the queue says is due. It is given its ports, not a service: the store, the
    transport, the signer, the clock, a random source (retry jitter), the retry policy and the
    endpoint rules. While it runs it is subscribed to ``notices``, the process's notice board
    (it implements the ``Notices`` port): it hears at once of work published here
    (``deliveries_due``) and of endpoints changed (``endpoint_changed``), and announces there
    the endpoints it auto-disables."""

    store: Storage
    transport: Transport
    signer: Signer
    clock: Clock
    random: RandomSource
    retry: RetryPolicy = field(factory=RetryPolicy)
    endpoint_rules: ep.EndpointRules = field(factory=ep.EndpointRules)
    settings: DispatchSettings = field(factory=DispatchSettings)
    notices: NoticeBoard = field(factory=NoticeBoard)
    stats: DispatchStats = field(factory=DispatchStats)
    observer: DeliveryObserver = field(factory=NoObserver)
    _signal: asyncio.Event = field(factory=asyncio.Event, init=False)
    _stopping: bool = field(default=False, init=False)
    _in_flight: dict[str, tuple[asyncio.Task[None], Job]] = field(factory=dict, init=False)
    _background: set[asyncio.Task[None]] = field(factory=set, init=False)
    _per_endpoint: dict[str, int] = field(factory=dict, init=False)
    _waiting: dict[str, deque[Job]] = field(factory=dict, init=False)
    _n_waiting: int = field(default=0, init=False)
    _recorder: Recorder = field(init=False)
    _latency: dict[str, float] = field(factory=dict, init=False)
    _paced_until: dict[str, datetime] = field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        self._recorder = Recorder(
            self.store, self.clock, self.retry, self.endpoint_rules, self.notices, self.stats, self.observer
        )

    @classmethod
    def beside(
        cls,
        service: WebhookService,
        transport: Transport,
        signer: Signer,
        settings: DispatchSettings | None = None,
    ) -> Dispatcher:
        """A dispatcher over the same ports and policies as ``service``, subscribed to its notice
        board: the wiring of one process that publishes and delivers (tests, the simulation, an
        embedding service). The dispatcher keeps the ports, not the service."""
        board = service.notices if isinstance(service.notices, NoticeBoard) else NoticeBoard()
        return cls(
            store=service.store,
            transport=transport,
            signer=signer,
            clock=service.clock,
            random=service.random,
            retry=service.settings.retry,
            endpoint_rules=service.settings.endpoint_rules,
            settings=settings or DispatchSettings(),
            notices=board,
        )

    def deliveries_due(self) -> None:
        """New work may be due: stop sleeping."""
        self._signal.set()

    def endpoint_changed(self, endpoint_id: str) -> None:
        """Hand back the endpoint's deliveries that wait for a slot: they hold a stale copy of it
        (it may be disabled now, or have a new URL or secret). They are claimed again at once."""
        jobs = self._waiting.pop(endpoint_id, None)
        if jobs:
            self._n_waiting -= len(jobs)
            now = self.clock.now()
            self._track(self._release([(job.due, now) for job in jobs]))
            self._signal.set()

    @property
    def busy(self) -> int:
        """Deliveries leased by this dispatcher and not yet recorded."""
        return len(self._in_flight) + self._n_waiting + self._recorder.pending

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until ``stop`` is set, then shut down gracefully: claim nothing more, give
        attempts in flight ``shutdown_grace`` to finish, record every outcome and hand back
        every lease not used. Cancelling this coroutine instead is a crash: nothing more is
        written, and leases expire on their own."""
        stop = stop or asyncio.Event()
        stop_waiter = asyncio.ensure_future(self._forward(stop))
        recorder = asyncio.ensure_future(self._recorder.run())
        self.notices.subscribe(self)
        try:
            while not stop.is_set():
                self.observer.loop_ticked(self.clock.now())
                if self._waiting:
                    await self._start_waiting()
                full = await self._claim()
                if full and self._budget() > 0:
                    continue
                await self._wait(await self._idle_seconds())
            await self._shutdown()
        finally:
            self.notices.unsubscribe(self)
            stop_waiter.cancel()
            recorder.cancel()
            for task, _ in list(self._in_flight.values()):
                task.cancel()
            for task in list(self._background):
                task.cancel()

    async def _forward(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stopping = True
        self._signal.set()

    # --- claiming ---------------------------------------------------------------------------

    def _budget(self) -> int:
        return self.settings.concurrency - len(self._in_flight)

    async def _claim(self) -> bool:
        """Lease a batch and start what can start; True if the batch came back full."""
        limit = min(self._budget(), self.settings.claim_batch)
        if limit <= 0 or self._stopping:
            return False
        clock = self.clock
        batch = await self.store.claim(clock.now(), limit, self.settings.lease)
        if not batch:
            return False
        self.stats.claimed += len(batch)
        endpoint_ids = list(dict.fromkeys(due.delivery.endpoint_id for due in batch))
        endpoints = await self.store.endpoints(endpoint_ids)
        now = clock.now()
        saturated: list[tuple[DueDelivery, datetime]] = []
        for due in batch:
            view = endpoints.get(due.delivery.endpoint_id)
            job = Job(due, view)
            if view is None or view.endpoint.status is EndpointStatus.DELETED:
                self._recorder.decide(job, dlv.Cancel("endpoint deleted", now))
            elif view.endpoint.status is not EndpointStatus.ENABLED:
                self._recorder.decide(job, dlv.Hold(now))
            elif not self._offer(job):
                saturated.append((due, self._pace(due.delivery.endpoint_id, now)))
        if saturated:
            await self._release(saturated)
        return len(batch) == limit

    def _pace(self, endpoint_id: str, now: datetime) -> datetime:
        """When to offer again a delivery its endpoint has no room for: after the ones already
        put off, one slot's worth of that endpoint's recent latency later. A backlog behind a
        slow endpoint is so spread out over the time it will take, instead of being handed
        back and claimed again and again while other endpoints wait."""
        latency = self._latency.get(endpoint_id, _FIRST_LATENCY_GUESS)
        slot = timedelta(seconds=max(latency, 0.01) / self.settings.per_endpoint_concurrency)
        until = max(self._paced_until.get(endpoint_id, now), now) + slot
        if len(self._paced_until) > _MAX_REMEMBERED:  # past paces no longer matter
            self._paced_until = {e: t for e, t in self._paced_until.items() if t > now}
        self._paced_until[endpoint_id] = until
        return until

    def _offer(self, job: Job) -> bool:
        endpoint_id = job.due.delivery.endpoint_id
        if self._per_endpoint.get(endpoint_id, 0) < self.settings.per_endpoint_concurrency:
            self._start(job)
            return True
        waiting = self._waiting.setdefault(endpoint_id, deque())
        if len(waiting) >= self.settings.per_endpoint_concurrency:
            return False
        waiting.append(job)
        self._n_waiting += 1
        return True

    def _start(self, job: Job) -> None:
        delivery_id = job.due.delivery.delivery_id
        endpoint_id = job.due.delivery.endpoint_id
        self._per_endpoint[endpoint_id] = self._per_endpoint.get(endpoint_id, 0) + 1
        task = asyncio.ensure_future(self._attempt(job))
        self._in_flight[delivery_id] = (task, job)
        task.add_done_callback(lambda _: self._finished(delivery_id, endpoint_id))

    def _finished(self, delivery_id: str, endpoint_id: str) -> None:
        self._in_flight.pop(delivery_id, None)
        remaining = self._per_endpoint[endpoint_id] - 1
        if remaining:
            self._per_endpoint[endpoint_id] = remaining
        else:
            del self._per_endpoint[endpoint_id]
        self._signal.set()

    async def _start_waiting(self) -> None:
        """Start deliveries that waited for a slot of their endpoint, now that slots are free.

        Their endpoint is looked up again first: it may have been disabled, deleted or changed
        meanwhile, by this process or another; then they are handed back to the queue, and the
        next claim sees them with the endpoint as it is now.
        """
        ready = [
            e for e in self._waiting if self._per_endpoint.get(e, 0) < self.settings.per_endpoint_concurrency
        ]
        if not ready:
            return
        fresh = await self.store.endpoints(ready)
        now = self.clock.now()
        stale: list[tuple[DueDelivery, datetime]] = []
        for endpoint_id in ready:
            jobs = self._waiting.get(endpoint_id)
            if not jobs:
                continue  # handed back meanwhile
            view = fresh.get(endpoint_id)
            if view is None or jobs[0].endpoint is None or view.version != jobs[0].endpoint.version:
                stale += [(job.due, now) for job in jobs]
                self._n_waiting -= len(jobs)
                del self._waiting[endpoint_id]
                continue
            while jobs and self._per_endpoint.get(endpoint_id, 0) < self.settings.per_endpoint_concurrency:
                job = jobs.popleft()
                self._n_waiting -= 1
                if self._lease_left(job) >= self.settings.request_timeout:
                    self._start(job)
                else:
                    stale.append((job.due, now))
            if not jobs:
                del self._waiting[endpoint_id]
        if stale:
            await self._release(stale)

    def _lease_left(self, job: Job) -> timedelta:
        return job.due.leased_until - self.clock.now()

    async def _release(self, returns: Sequence[tuple[DueDelivery, datetime]]) -> None:
        await self.store.release(returns)
        self.stats.released += len(returns)

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- attempting -------------------------------------------------------------------------

    async def _attempt(self, job: Job) -> None:
        due = job.due
        delivery = due.delivery
        assert job.endpoint is not None
        endpoint = job.endpoint.endpoint
        clock = self.clock
        attempt = delivery.attempts + 1
        started_at = clock.now()
        body = due.body.encode("utf-8")
        headers = delivery_headers(
            self.signer,
            endpoint,
            body=body,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            delivery_id=delivery.delivery_id,
            attempt=attempt,
            now=started_at,
            user_agent=self.settings.user_agent,
            test=delivery.test,
        )
        request = OutboundRequest(endpoint.url, headers, body, self.settings.request_timeout)
        try:
            outcome = await self.transport.send(request)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a transport bug must not strand the delivery
            log.exception("transport raised for %s", delivery.delivery_id)
            outcome = TransportFailure(
                ErrorKind.OTHER, clock.now() - started_at, f"{type(error).__name__}: {error}"
            )
        self.stats.attempts += 1
        seconds = outcome.elapsed.total_seconds()
        if len(self._latency) > _MAX_REMEMBERED:
            self._latency.clear()  # an estimate per endpoint; it is relearnt from the next attempt
        previous = self._latency.get(delivery.endpoint_id, seconds)
        self._latency[delivery.endpoint_id] = 0.8 * previous + 0.2 * seconds
        sample = self.random.random() if self.retry.jitter else 0.5
        self._recorder.decide(job, dlv.RecordOutcome(attempt, started_at, outcome, clock.now(), sample))

    # --- waiting and stopping ---------------------------------------------------------------

    async def _idle_seconds(self) -> float:
        poll = self.settings.poll_interval.total_seconds()
        if self._budget() <= 0:
            return poll  # a finishing attempt signals
        next_due = await self.store.next_due()
        if next_due is None:
            return poll
        until = (next_due - self.clock.now()).total_seconds()
        return min(poll, max(until, _MIN_WAIT))

    async def _wait(self, seconds: float) -> None:
        if not self._signal.is_set():
            await _first(self.clock.sleep(seconds), self._signal.wait())
        self._signal.clear()

    async def _shutdown(self) -> None:
        clock = self.clock
        grace = self.settings.shutdown_grace.total_seconds()
        unstarted = [(job.due, clock.now()) for jobs in self._waiting.values() for job in jobs]
        self._waiting.clear()
        self._n_waiting = 0
        if unstarted:
            await self._release(unstarted)
        if self._in_flight:
            attempts = [task for task, _ in self._in_flight.values()]
            await _first(clock.sleep(grace), asyncio.wait(attempts))
        cut_short = [(job.due, clock.now()) for task, job in self._in_flight.values() if not task.done()]
        tasks = [task for task, _ in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if cut_short:
            await self._release(cut_short)
        if self._background:
            await asyncio.wait(list(self._background))
        if not self._recorder.flushed.is_set():
            await _first(clock.sleep(grace), self._recorder.flushed.wait())


async def _first(*awaitables: Coroutine[Any, Any, Any] | asyncio.Future[Any]) -> None:
    """Wait until the first of ``awaitables`` finishes, then cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
