"""Recording outcomes: the dispatcher's decisions written in batches (group commit).

Whatever finished while the previous batch was being written goes into the next transaction, so
an idle system writes each outcome at once and a busy one amortises its transactions. A batch
that conflicts (the delivery was cancelled, or recorded by a worker whose lease outlived ours) is
decided again against the delivery as it is now. Failed attempts that make an endpoint fail for
too long disable it here, the one place the worker does so (the rule is ``endpoint.failing_too_long``);
and here circuit breakers open and close (ADR 0015), judged on the store's count of failures in a row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from attrs import define, field, frozen

from ...core import delivery as dlv
from ...core import endpoint as ep
from ...core import flow
from ...core.errors import ConcurrencyConflict, DomainError, InvalidTransition
from ...core.events import AttemptFailed, AttemptSucceeded, DeliveryFailed
from ...core.ports import Clock, Storage, StreamAppend
from ...core.retry import RetryPolicy
from ...core.views import DueDelivery, EndpointView
from ..services import NoticeBoard
from ..services.operational import Notice, OperationalEvents, Outcome, append_with_notices
from .observer import DeliveryObserver, NoObserver

__all__ = ["DispatchStats", "Job", "Recorder"]

_FAILURES = (AttemptFailed, DeliveryFailed)  # a tuple: cheaper to test than a union

log = logging.getLogger("attribution_webhooks.app.worker")


@define
class DispatchStats:
    """Counters for tests, logs and benchmarks."""

    claimed: int = 0
    attempts: int = 0
    succeeded: int = 0
    failed_attempts: int = 0
    held: int = 0
    cancelled: int = 0
    released: int = 0
    conflicts: int = 0
    transactions: int = 0


@frozen
class Job:
    """A leased delivery and the endpoint as it was when it was claimed."""

    due: DueDelivery
    endpoint: EndpointView | None


@frozen
class _Decision:
    job: Job
    command: dlv.DeliveryCommand


@define
class Recorder:
    """Writes the decisions of one dispatcher. ``run()`` it as a task beside the dispatcher."""

    store: Storage
    clock: Clock
    retry: RetryPolicy
    endpoint_rules: ep.EndpointRules
    notices: NoticeBoard
    stats: DispatchStats
    observer: DeliveryObserver = field(factory=NoObserver)
    #: Makes the operational notices (ADR 0017) written with the outcomes; None: none.
    operational: OperationalEvents | None = None
    #: Set while every decision taken has been written.
    flushed: asyncio.Event = field(factory=asyncio.Event, init=False)
    _decisions: list[_Decision] = field(factory=list, init=False)
    _recording: list[_Decision] = field(factory=list, init=False)
    _decided: asyncio.Event = field(factory=asyncio.Event, init=False)

    def __attrs_post_init__(self) -> None:
        self.flushed.set()

    @property
    def pending(self) -> int:
        """Decisions taken and not yet written."""
        return len(self._decisions) + len(self._recording)

    def held(self) -> list[DueDelivery]:
        """The leases of decisions not yet written: the worker still holds them."""
        return [d.job.due for d in (*self._recording, *self._decisions)]

    def decide(self, job: Job, command: dlv.DeliveryCommand) -> None:
        """Queue ``command`` for the delivery of ``job``; it is written with the next batch."""
        self._decisions.append(_Decision(job, command))
        self.flushed.clear()
        self._decided.set()

    async def run(self) -> None:
        """Write decisions in batches until cancelled: whatever was decided while one batch was
        being written goes into the next transaction."""
        while True:
            await self._decided.wait()
            self._decided.clear()
            while self._decisions:
                batch, self._decisions = self._decisions, []
                self._recording = batch
                try:
                    await self._record(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("recording %d outcomes failed; retrying", len(batch))
                    self._decisions[:0] = batch
                    await self.clock.sleep(1.0)
                finally:
                    self._recording = []
            self.flushed.set()

    async def _record(self, batch: list[_Decision]) -> None:
        policy = self.retry
        appends: list[StreamAppend] = []
        decided: list[tuple[_Decision, tuple[Any, ...]]] = []
        for decision in batch:
            due = decision.job.due
            try:
                events = tuple(dlv.decide(decision.command, due.delivery, policy))
            except InvalidTransition as error:
                log.warning(
                    "dropping %s for %s: %s", type(decision.command).__name__, due.delivery.delivery_id, error
                )
                continue
            if events:
                appends.append(StreamAppend(due.delivery.delivery_id, due.version, events))
                decided.append((decision, events))
        if not appends:
            return
        notices = await self._notices(
            [
                Outcome(d.job.due.delivery, d.job.due.version, d.job.endpoint, events)
                for d, events in decided
                if _failed(events)
            ]
        )
        try:
            await append_with_notices(self.store, appends, [n for ns in notices.values() for n in ns])
            self.stats.transactions += 1
            written = decided
        except ConcurrencyConflict as conflict:
            # The delivery changed while we worked on it (cancelled, or recorded by a worker whose
            # lease outlived ours): decide those again against their state as it is now.
            written = []
            for append, item in zip(appends, decided, strict=True):
                if append.stream_id in conflict.streams:
                    redecided = await self._redecide(item[0])
                    if redecided is not None:
                        written.append(redecided)
                    continue
                await append_with_notices(self.store, [append], notices.get(append.stream_id, []))
                self.stats.transactions += 1
                written.append(item)
        if notices:
            self.notices.deliveries_due()
        await self._after_recording(written)

    async def _notices(self, outcomes: list[Outcome]) -> dict[str, list[Notice]]:
        """The operational notices of ``outcomes``, keyed by delivery stream (ADR 0017)."""
        if self.operational is None or not outcomes:
            return {}  # a batch of successes causes no notice: nothing to look at
        return await self.operational.of_outcomes(outcomes)

    async def _redecide(self, decision: _Decision) -> tuple[_Decision, tuple[Any, ...]] | None:
        delivery_id = decision.job.due.delivery.delivery_id
        for _ in range(3):
            self.stats.conflicts += 1
            view = await self.store.delivery(delivery_id)
            if view is None:
                return None
            try:
                events = tuple(dlv.decide(decision.command, view.delivery, self.retry))
            except InvalidTransition as error:
                log.info("not recording %s for %s: %s", type(decision.command).__name__, delivery_id, error)
                return None
            try:
                if events:
                    append = StreamAppend(delivery_id, view.version, events)
                    outcome = Outcome(view.delivery, view.version, decision.job.endpoint, events)
                    notices = await self._notices([outcome] if _failed(events) else [])
                    await append_with_notices(self.store, [append], notices.get(delivery_id, []))
                    self.stats.transactions += 1
                return decision, events
            except ConcurrencyConflict:
                continue
        log.warning(
            "gave up recording %s for %s after repeated conflicts",
            type(decision.command).__name__,
            delivery_id,
        )
        return None

    async def _after_recording(self, written: list[tuple[_Decision, tuple[Any, ...]]]) -> None:
        to_disable: set[str] = set()  # endpoints that may have failed long enough
        to_open: set[str] = set()  # endpoints whose breaker may open
        to_close: set[str] = set()  # endpoints whose open breaker a success closes
        for decision, events in written:
            try:
                self.observer.recorded(decision.job.due.delivery, events)
            except Exception:  # watching must never undo the recording
                log.exception("the delivery observer failed")
            command = decision.command
            if isinstance(command, dlv.Hold):
                self.stats.held += 1
            elif isinstance(command, dlv.Cancel):
                self.stats.cancelled += 1
            view = decision.job.endpoint
            for event in events:
                if isinstance(event, AttemptSucceeded):
                    self.stats.succeeded += 1
                    if view is not None and view.endpoint.circuit_breaker_opened_at is not None:
                        to_close.add(event.endpoint_id)
                elif isinstance(event, AttemptFailed):
                    self.stats.failed_attempts += 1
                    since = view.failing_since if view is not None else None
                    if ep.failing_too_long(since, event.started_at, self.endpoint_rules):
                        to_disable.add(event.endpoint_id)
                    if view is not None and view.endpoint.circuit_breaker_threshold is not None:
                        to_open.add(event.endpoint_id)
        for endpoint_id in to_close:
            await self._close_breaker(endpoint_id)
        for endpoint_id in to_open - to_close:
            await self._open_breaker(endpoint_id)
        for endpoint_id in to_disable:
            if await self._auto_disable(endpoint_id):
                log.warning("endpoint %s disabled: every delivery to it has failed for too long", endpoint_id)

    async def _open_breaker(self, endpoint_id: str) -> None:
        """Open the endpoint's breaker if, by the store's count, enough attempts in a row failed."""
        view = await self.store.endpoint(endpoint_id)
        if view is None:
            return
        state = view.endpoint
        opened = state.circuit_breaker_opened_at is not None
        if not flow.breaker_should_open(state.circuit_breaker_threshold, opened, view.failures):
            return
        if await self._endpoint_command(view, ep.OpenBreaker(view.failures, self.clock.now())):
            log.warning(
                "endpoint %s: circuit breaker open after %d failed attempts in a row",
                endpoint_id,
                view.failures,
            )

    async def _close_breaker(self, endpoint_id: str) -> None:
        """Close the endpoint's breaker after a success; what waited behind it is due again."""
        view = await self.store.endpoint(endpoint_id)
        if view is None or view.failures > 0:  # gone, or failing again since: the next probe decides
            return
        now = self.clock.now()
        if await self._endpoint_command(view, ep.CloseBreaker(now)):
            await self.store.wake(endpoint_id, now)
            self.notices.deliveries_due()
            log.info("endpoint %s: circuit breaker closed", endpoint_id)

    async def _endpoint_command(self, view: EndpointView, command: ep.EndpointCommand) -> bool:
        """Append what ``command`` decides for the endpoint; False if nothing, or it changed meanwhile."""
        endpoint_id = view.endpoint.endpoint_id
        try:
            events = ep.decide(command, view.endpoint, self.endpoint_rules)
            if not events:
                return False
            await self.store.append(StreamAppend(endpoint_id, view.version, tuple(events)))
        except (ConcurrencyConflict, DomainError):
            return False  # another worker got there first, or it changed: the next outcome decides
        self.notices.endpoint_changed(endpoint_id)
        return True

    async def _auto_disable(self, endpoint_id: str) -> bool:
        """Disable the endpoint if the decider judges, on the read model as it is now, that it
        has failed for too long. Returns whether this call disabled it."""
        view = await self.store.endpoint(endpoint_id)
        if view is None or view.failing_since is None:
            return False
        command = ep.AutoDisable(view.failing_since, self.clock.now())
        try:
            events = ep.decide(command, view.endpoint, self.endpoint_rules)
            if not events:
                return False
            notices = [] if self.operational is None else await self.operational.of_endpoint(view, events)
            await append_with_notices(
                self.store, [StreamAppend(endpoint_id, view.version, tuple(events))], notices
            )
        except (ConcurrencyConflict, DomainError):
            return False  # it changed meanwhile, or has not failed long enough: next failure retries
        self.notices.endpoint_changed(endpoint_id)
        if notices:
            self.notices.deliveries_due()
        return True


def _failed(events: Sequence[object]) -> bool:
    """Whether recorded ``events`` hold a failure, the only thing that causes a notice of an
    outcome (``OperationalEvents.of_outcomes``: webhook.failing, delivery.exhausted)."""
    return any(isinstance(event, _FAILURES) for event in events)
