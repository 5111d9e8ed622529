"""The delivery loop: claim due deliveries, send them, record outcomes, schedule retries.

One dispatcher runs per worker process. It leases due deliveries from the queue in batches,
sends them concurrently (the slots are shared by the rule in ``core.fairness``: a limit per
endpoint and per account, and a small shared budget for endpoints that are slow, time out or are
not known yet, so that hanging endpoints cannot take the slots healthy ones need), keeps its
leases short and renews them while it lives (a heartbeat: a dead worker's deliveries are claimed
again within seconds, ADR 0014), and records outcomes in batches: whatever finished while the previous
batch was being written goes into the next transaction (group commit), so an idle system writes
each outcome at once and a busy one amortises its transactions. It sleeps until the next
delivery is due, a publish wakes it, or ``poll_interval`` passes (for work published by other
processes). Every wait goes through the clock port, so the simulator can run it in virtual time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any

from attrs import define, field

from ...core import delivery as dlv
from ...core import endpoint as ep
from ...core.endpoint import EndpointStatus
from ...core.fairness import SlotRules, Verdict
from ...core.flow import BreakerRules
from ...core.outcomes import ErrorKind, TransportFailure
from ...core.ports import Clock, RandomSource, Signer, Storage, Transport
from ...core.retry import RetryPolicy
from ...core.views import DueDelivery
from ..services import NoticeBoard, WebhookService
from ..services.operational import OperationalEvents
from .gating import Gating
from .leases import heartbeat
from .observer import DeliveryObserver, NoObserver
from .recorder import DispatchStats, Job, Recorder
from .sending import send_attempt
from .settings import DispatchSettings
from .slots import Slots
from .tracer import AttemptTracer

__all__ = ["DispatchSettings", "DispatchStats", "Dispatcher"]

_MIN_WAIT = 0.001  # never spin: a wait is at least a millisecond
_TIMEOUTS = (ErrorKind.TIMEOUT, ErrorKind.CONNECT_TIMEOUT, ErrorKind.READ_TIMEOUT)


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
    #: Makes the operational notices (ADR 0017) of what it records; None: it makes none.
    operational: OperationalEvents | None = None
    #: A span per attempt (OpenTelemetry), when tracing is enabled; None costs nothing.
    tracer: AttemptTracer | None = None
    breaker: BreakerRules = field(factory=BreakerRules)
    _signal: asyncio.Event = field(factory=asyncio.Event, init=False)
    _stopping: bool = field(default=False, init=False)
    _in_flight: dict[str, tuple[asyncio.Task[None], Job]] = field(factory=dict, init=False)
    _background: set[asyncio.Task[None]] = field(factory=set, init=False)
    _waiting: dict[str, deque[Job]] = field(factory=dict, init=False)
    _n_waiting: int = field(default=0, init=False)
    _recorder: Recorder = field(init=False)
    _slots: Slots = field(init=False)
    _gating: Gating = field(init=False)
    _loop: asyncio.AbstractEventLoop = field(init=False)
    #: Every lease held at the last successful heartbeat lasts at least until then.
    _renewed_until: datetime | None = field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._recorder = Recorder(
            self.store,
            self.clock,
            self.retry,
            self.endpoint_rules,
            self.notices,
            self.stats,
            self.observer,
            self.operational,
        )
        self._gating = Gating(self.store, self.breaker)
        settings = self.settings
        self._slots = Slots(
            SlotRules.sharing(
                settings.concurrency,
                settings.per_endpoint_concurrency,
                settings.slow_after.total_seconds(),
                settings.account_share,
            )
        )

    @classmethod
    def beside(
        cls,
        service: WebhookService,
        transport: Transport,
        signer: Signer,
        settings: DispatchSettings | None = None,
        breaker: BreakerRules | None = None,
    ) -> Dispatcher:
        """A dispatcher over the same ports and policies as ``service``, subscribed to its notice
        board: the wiring of one process that publishes and delivers (tests, the simulation, an
        embedding service). The dispatcher keeps the ports, not the service."""
        ports = service.ports
        board = ports.notices if isinstance(ports.notices, NoticeBoard) else NoticeBoard()
        return cls(
            store=ports.store,
            transport=transport,
            signer=signer,
            clock=ports.clock,
            random=ports.random,
            retry=ports.settings.retry,
            endpoint_rules=ports.settings.endpoint_rules,
            settings=settings or DispatchSettings(),
            notices=board,
            operational=OperationalEvents.over(ports),
            breaker=breaker or BreakerRules(),
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
        self._loop = asyncio.get_running_loop()
        stop_waiter = asyncio.ensure_future(self._forward(stop))
        recorder = asyncio.ensure_future(self._recorder.run())
        heartbeat = asyncio.ensure_future(self._heartbeat())
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
            heartbeat.cancel()
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
        """How many deliveries to claim: free slots not promised to deliveries already waiting."""
        self._slots.refresh(self.clock.now())
        return self._slots.free() - self._n_waiting

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
        self._slots.refresh(now)
        saturated: list[tuple[DueDelivery, datetime]] = []
        gated: dict[str, list[Job]] = {}
        for due in batch:
            view = endpoints.get(due.delivery.endpoint_id)
            job = Job(due, view)
            if view is None or view.endpoint.status is EndpointStatus.DELETED:
                self._recorder.decide(job, dlv.Cancel("endpoint deleted", now))
            elif view.endpoint.status is not EndpointStatus.ENABLED:
                self._recorder.decide(job, dlv.Hold(now))
            elif Gating.applies(view):
                gated.setdefault(due.delivery.endpoint_id, []).append(job)
            elif not self._offer(job, now):
                saturated.append((due, self._slots.pace(due.delivery.endpoint_id, now)))
        if gated:
            saturated += await self._admit(gated)
        if saturated:
            await self._release(saturated)
        return len(batch) == limit

    async def _admit(self, gated: dict[str, list[Job]]) -> list[tuple[DueDelivery, datetime]]:
        """Start what the endpoints' rate limits and open breakers admit (asked of the store, so
        every worker process shares them); the rest go back to the queue, each at the time it
        may go, unattempted. Deliveries of such an endpoint never wait here for a slot: an
        attempt starts when it is admitted, or the admission is not used (ADR 0015)."""
        slots, limit = self._slots, self.settings.per_endpoint_concurrency
        room = {endpoint_id: max(limit - slots.running(endpoint_id), 0) for endpoint_id in gated}
        admitted, later = await self._gating.admit(gated, room, self.clock.now())
        now = self.clock.now()
        slots.refresh(now)
        returns: list[tuple[DueDelivery, datetime]] = []
        for job in admitted:
            delivery = job.due.delivery
            if slots.verdict(delivery.endpoint_id, delivery.account_id) is Verdict.START:
                self._start(job, now)
            else:  # no slot after all: this admission goes unused, which only slows the endpoint
                returns.append((job.due, slots.pace(delivery.endpoint_id, now)))
        for job, at in later:
            returns.append((job.due, slots.pace(job.due.delivery.endpoint_id, now) if at is None else at))
        return returns

    def _offer(self, job: Job, now: datetime) -> bool:
        """Start the job, or queue it behind its endpoint's attempts; False if it must be handed back."""
        delivery = job.due.delivery
        verdict = self._slots.verdict(delivery.endpoint_id, delivery.account_id)
        if verdict is Verdict.START:
            self._start(job, now)
            return True
        if verdict is Verdict.PACE:
            return False
        waiting = self._waiting.setdefault(delivery.endpoint_id, deque())
        if len(waiting) >= self.settings.per_endpoint_concurrency:
            return False
        waiting.append(job)
        self._n_waiting += 1
        return True

    def _start(self, job: Job, now: datetime) -> None:
        delivery = job.due.delivery
        delivery_id, endpoint_id, account_id = delivery.delivery_id, delivery.endpoint_id, delivery.account_id
        self._slots.started(delivery_id, endpoint_id, account_id, now)
        self._in_flight[delivery_id] = (self._loop.create_task(self._attempt(job)), job)

    def _finished(self, delivery_id: str, endpoint_id: str, account_id: str) -> None:
        self._in_flight.pop(delivery_id, None)
        self._slots.finished(delivery_id, endpoint_id, account_id)
        self._signal.set()

    async def _start_waiting(self) -> None:
        """Start deliveries that waited for a slot of their endpoint, now that slots are free.

        Their endpoint is looked up again first: it may have been disabled, deleted or changed
        meanwhile, by this process or another; then they are handed back to the queue, and the
        next claim sees them with the endpoint as it is now.
        """
        limit = self.settings.per_endpoint_concurrency
        slots = self._slots
        slots.refresh(self.clock.now())
        ready = [e for e in self._waiting if slots.running(e) < limit or slots.slow(e)]
        if not ready:
            return
        fresh = await self.store.endpoints(ready)
        now = self.clock.now()
        slots.refresh(now)
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
            # Those that may not start yet keep waiting (their leases are renewed meanwhile),
            # unless their endpoint turned out slow, or is untrusted and its budget full: then
            # they go back to the queue, paced, and take no room from healthy endpoints here.
            while jobs:
                verdict = slots.verdict(endpoint_id, jobs[0].due.delivery.account_id)
                if verdict is not Verdict.START and slots.slow(endpoint_id):
                    verdict = Verdict.PACE
                if verdict is Verdict.WAIT or (verdict is Verdict.PACE and slots.trusted(endpoint_id)):
                    break
                job = jobs.popleft()
                self._n_waiting -= 1
                if verdict is Verdict.PACE:
                    stale.append((job.due, slots.pace(endpoint_id, now)))
                elif self._lease_left(job, now) > self.settings.heartbeat:
                    self._start(job, now)
                else:  # the heartbeat failed meanwhile: another worker may hold it now
                    stale.append((job.due, now))
            if not jobs:
                del self._waiting[endpoint_id]
        if stale:
            await self._release(stale)

    def _lease_left(self, job: Job, now: datetime) -> timedelta:
        until = job.due.leased_until
        if self._renewed_until is not None and self._renewed_until > until:
            until = self._renewed_until
        return until - now

    async def _heartbeat(self) -> None:
        await heartbeat(self.store, self.clock, self.settings, self._held, self._renewed)

    def _held(self) -> list[DueDelivery]:
        held = [job.due for _, job in self._in_flight.values()]
        held += [job.due for jobs in self._waiting.values() for job in jobs]
        return held + self._recorder.held()

    def _renewed(self, until: datetime) -> None:
        self._renewed_until = until

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
        try:
            started_at, outcome = await send_attempt(
                due, endpoint, self.signer, self.transport, self.clock, self.settings, self.tracer
            )
            self.stats.attempts += 1
            timed_out = isinstance(outcome, TransportFailure) and outcome.kind in _TIMEOUTS
            self._slots.measured(delivery.endpoint_id, outcome.elapsed.total_seconds(), timed_out)
            sample = self.random.random() if self.retry.jitter else 0.5
            self._recorder.decide(
                job, dlv.RecordOutcome(due.attempt, started_at, outcome, self.clock.now(), sample)
            )
        finally:  # in the task itself, not a done-callback: one loop turn less per delivery
            self._finished(delivery.delivery_id, delivery.endpoint_id, delivery.account_id)

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
        cut_short = [job for task, job in self._in_flight.values() if not task.done()]
        tasks = [task for task, _ in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # They were sent, perhaps received: the log says so, and the next attempt has the next number.
        for job in cut_short:
            self._recorder.decide(job, dlv.Abandon(job.due.attempt, dlv.WORKER_STOPPED, clock.now()))
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
