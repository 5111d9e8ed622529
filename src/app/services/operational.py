"""Publishing operational events (``core.operational``, ADR 0017) in the append of their cause.

The recorder hands over what it is about to write (``of_outcomes``: exhausted deliveries, first
failures) and the endpoint commands what they decided (``of_endpoint``: disabling); each gets
back the appends of the notices, which go into the same append as the facts that cause them: a
notice exists if, and only if, its cause was written (at-least-once delivery then follows from
the notice's own deliveries, retried like any other).

Notice ids are derived from their cause, so a notice written twice is a ``ConcurrencyConflict``
on its event stream: ``append_with_notices`` drops such a notice (another worker wrote it) and
writes the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from attrs import define, field, frozen

from ...core import endpoint as ep
from ...core import operational as ops
from ...core.delivery import Delivery
from ...core.errors import ConcurrencyConflict
from ...core.events import (
    AttemptFailed,
    DeliveryEvent,
    DeliveryFailed,
    EndpointDisabled,
    EndpointEvent,
)
from ...core.ports import Clock, IdGenerator, Storage, StreamAppend
from ...core.retry import RetryPolicy
from ...core.views import EndpointView
from ...core.wire import JsonValue
from .publishing import PlannedEvent, plan_event

if TYPE_CHECKING:
    from .webhooks import ServicePorts

__all__ = ["Notice", "OperationalEvents", "Outcome", "append_with_notices"]

#: The appends of one notice: its event stream first, then a delivery stream per recipient.
Notice = tuple[StreamAppend, ...]


@frozen
class Outcome:
    """Events about to be appended to a delivery at ``version``; ``endpoint`` as it was when
    the delivery was claimed (None if it was gone)."""

    delivery: Delivery
    version: int
    endpoint: EndpointView | None
    events: tuple[DeliveryEvent, ...]


@define
class OperationalEvents:
    """Makes the notices of facts about to be written. Reads the store (subscribers, the last
    ``webhook.failing`` notice), never writes it."""

    store: Storage
    clock: Clock
    ids: IdGenerator
    retry: RetryPolicy
    failing_cooldown: timedelta = ops.DEFAULT_FAILING_COOLDOWN
    _subscribers: dict[tuple[str, str], Sequence[EndpointView]] = field(factory=dict, init=False)

    @classmethod
    def over(cls, ports: ServicePorts) -> OperationalEvents:
        """Over a service's ports and settings."""
        settings = ports.settings
        return cls(ports.store, ports.clock, ports.ids, settings.retry, settings.failing_notice_cooldown)

    async def of_outcomes(self, outcomes: Sequence[Outcome]) -> dict[str, list[Notice]]:
        """The notices the outcomes cause, keyed by the delivery stream whose events cause
        them: a ``delivery.exhausted`` per ``DeliveryFailed`` (not for a delivery of an
        operational event), and a ``webhook.failing`` per endpoint that was healthy and fails."""
        self._subscribers.clear()
        notices: dict[str, list[Notice]] = {}
        healthy_failures: dict[str, tuple[Outcome, AttemptFailed]] = {}
        for outcome in outcomes:
            last_failed: AttemptFailed | None = None
            for index, event in enumerate(outcome.events):
                if isinstance(event, AttemptFailed):
                    last_failed = event
                    view = outcome.endpoint
                    if view is not None and view.failing_since is None:
                        healthy_failures.setdefault(event.endpoint_id, (outcome, event))
                elif isinstance(event, DeliveryFailed) and not ops.is_operational(
                    outcome.delivery.event_type
                ):
                    notice = await self._exhausted(outcome, outcome.version + index + 1, event, last_failed)
                    notices.setdefault(event.delivery_id, []).append(notice)
        if healthy_failures:
            fresh = await self.store.endpoints(list(healthy_failures))
            for endpoint_id, (outcome, failed) in healthy_failures.items():
                view = fresh.get(endpoint_id)
                failing = None if view is None else await self._failing(view, outcome, failed)
                if failing is not None:
                    notices.setdefault(failed.delivery_id, []).append(failing)
        return notices

    async def of_endpoint(self, before: EndpointView, events: Sequence[EndpointEvent]) -> list[Notice]:
        """The notices of endpoint events about to be appended to the endpoint at
        ``before.version``: a ``webhook.disabled`` per ``EndpointDisabled``."""
        self._subscribers.clear()
        notices: list[Notice] = []
        endpoint = before.endpoint
        for index, event in enumerate(events):
            if isinstance(event, EndpointDisabled):
                notices.append(
                    await self._notice(
                        endpoint.account_id,
                        ops.disabled_event_id(event.endpoint_id, before.version + index + 1),
                        ops.OperationalType.WEBHOOK_DISABLED,
                        ops.disabled_data(endpoint.url, event),
                        event.disabled_at,
                        event.endpoint_id,
                    )
                )
        return notices

    async def _exhausted(
        self, outcome: Outcome, version: int, failed: DeliveryFailed, last: AttemptFailed | None
    ) -> Notice:
        delivery = outcome.delivery
        url = outcome.endpoint.endpoint.url if outcome.endpoint is not None else ""
        return await self._notice(
            delivery.account_id,
            ops.exhausted_event_id(delivery.delivery_id, version),
            ops.OperationalType.DELIVERY_EXHAUSTED,
            ops.exhausted_data(url, delivery.event_id, delivery.event_type, failed, last),
            failed.failed_at,
            delivery.endpoint_id,
        )

    async def _failing(self, view: EndpointView, outcome: Outcome, failed: AttemptFailed) -> Notice | None:
        endpoint = view.endpoint
        now = self.clock.now()
        window = ops.failing_window(now, self.failing_cooldown)
        last_notice_at: datetime | None = None
        for earlier in (window, window - 1):  # a notice within the cool-down is in one of these
            found = await self.store.event(
                endpoint.account_id, ops.failing_event_id(endpoint.endpoint_id, earlier)
            )
            if found is not None:
                last_notice_at = found.published_at
                break
        enabled = endpoint.status is ep.EndpointStatus.ENABLED
        if not ops.failing_notice_due(
            view.failing_since, enabled, last_notice_at, now, self.failing_cooldown
        ):
            return None
        return await self._notice(
            endpoint.account_id,
            ops.failing_event_id(endpoint.endpoint_id, window),
            ops.OperationalType.WEBHOOK_FAILING,
            ops.failing_data(endpoint.url, outcome.delivery.event_id, failed),
            failed.started_at,
            endpoint.endpoint_id,
        )

    async def _notice(
        self,
        account_id: str,
        event_id: str,
        event_type: ops.OperationalType,
        data: dict[str, JsonValue],
        occurred_at: datetime,
        about: str,
    ) -> Notice:
        key = (account_id, event_type.value)
        if key not in self._subscribers:
            self._subscribers[key] = await self.store.subscribers(account_id, event_type)
        subscribers = {view.endpoint.endpoint_id: view for view in self._subscribers[key]}
        chosen = [subscribers[i] for i in ops.recipients(list(subscribers), about)]
        planned = PlannedEvent(account_id, event_id, event_type.value, data, occurred_at)
        appends, _ = plan_event(planned, chosen, self.clock.now(), self.ids, self.retry)
        return tuple(appends)


def _stream(notice: Notice) -> str:
    return notice[0].stream_id


async def append_with_notices(
    store: Storage, appends: Sequence[StreamAppend], notices: Sequence[Notice]
) -> None:
    """Append ``appends`` and ``notices`` atomically. A notice whose event stream exists already
    was written by another worker that recorded the same cause: it is left out and the rest is
    appended again. Any other conflict is raised, and nothing is written."""
    remaining = list(notices)
    while True:
        try:
            await store.append(*appends, *(a for notice in remaining for a in notice))
            return
        except ConcurrencyConflict as conflict:
            clashing = set(conflict.streams)
            kept = [notice for notice in remaining if _stream(notice) not in clashing]
            if len(kept) == len(remaining):
                raise
            remaining = kept
