"""Read-side use cases of the dashboard: the delivery log with its filters, health over a window,
an endpoint's history, and the headers each attempt sent.

Like ``WebhookService`` they see only ports, and an id of another account is NotFound. The
headers are rebuilt from the event log rather than stored: the endpoint's state is folded up to
the attempt's start and signed again with the same Signer, so a secret rotated since then shows
as it was, and the table costs no storage per attempt.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from attrs import frozen

from ...core import endpoint as ep
from ...core.delivery import DeliveryStatus
from ...core.errors import NotFound
from ...core.events import EndpointDisabled, EndpointEvent
from ...core.ports import Signer
from ...core.signing import delivery_headers
from ...core.views import AttemptView, DeliveryView, EndpointHealth, EndpointView
from .webhooks import WebhookService

__all__ = ["HEALTH_SAMPLE", "HEALTH_WINDOW", "LogFilter", "LogPage", "Reports"]

HEALTH_WINDOW = timedelta(hours=24)
#: Health looks at each endpoint's latest deliveries only: its cost stays flat however busy the
#: account (about 10k index lookups for 20 endpoints), and 500 is plenty for a rate at a glance.
HEALTH_SAMPLE = 500
_ENDPOINT_EVENTS: tuple[type, ...] = EndpointEvent.__args__  # a union's member classes


@frozen
class LogFilter:
    """The delivery log's filters, all optional; ``created_until`` is exclusive."""

    endpoint_id: str | None = None
    statuses: Collection[DeliveryStatus] | None = None
    event_type: str | None = None
    created_from: datetime | None = None
    created_until: datetime | None = None


@frozen
class LogPage:
    """Deliveries newest first; ``next_cursor`` (the last id) when there are older ones."""

    rows: Sequence[DeliveryView]
    next_cursor: str | None


class Reports:
    """Queries over the read models for pages that show more than the API's resources."""

    def __init__(self, service: WebhookService, signer: Signer, user_agent: str) -> None:
        self.service = service
        self.store = service.ports.store
        self.signer = signer
        self.user_agent = user_agent

    async def webhooks(self, account_id: str) -> Sequence[EndpointView]:
        """Every live endpoint of the account, oldest first."""
        return await self.store.list_endpoints(account_id, limit=10_000)

    async def log(self, account_id: str, wanted: LogFilter, cursor: str | None, size: int) -> LogPage:
        """One page of the account's deliveries, newest first, narrowed by ``wanted``."""
        if wanted.endpoint_id is not None:
            await self.service.endpoint(account_id, wanted.endpoint_id)
        views = await self.store.deliveries(
            account_id,
            endpoint_id=wanted.endpoint_id,
            statuses=wanted.statuses,
            event_type=wanted.event_type,
            created_from=wanted.created_from,
            created_until=wanted.created_until,
            before=cursor,
            limit=size + 1,
        )
        rows = views[:size]
        return LogPage(rows, rows[-1].delivery.delivery_id if len(views) > size else None)

    async def health(self, account_id: str) -> Mapping[str, EndpointHealth]:
        """Each endpoint's attempts over the last ``HEALTH_WINDOW`` (of its latest ``HEALTH_SAMPLE``
        deliveries)."""
        since = self.service.ports.clock.now() - HEALTH_WINDOW
        return await self.store.endpoint_health(account_id, since, HEALTH_SAMPLE)

    async def attempts(self, account_id: str, delivery_id: str) -> Sequence[AttemptView]:
        """A delivery's attempts, oldest first; NotFound for another account's delivery."""
        await self.service.delivery(account_id, delivery_id)
        return await self.store.attempts(delivery_id)

    async def endpoint_of(self, account_id: str, delivery: DeliveryView) -> EndpointView:
        """The endpoint a delivery of the account goes to, deleted or not."""
        view = await self.store.endpoint(delivery.delivery.endpoint_id)
        if view is None or view.endpoint.account_id != account_id:
            raise NotFound("webhook", delivery.delivery.endpoint_id)
        return view

    async def _history(self, endpoint_id: str) -> list[EndpointEvent]:
        recorded = await self.store.read(endpoint_id)
        return [r.event for r in recorded if isinstance(r.event, _ENDPOINT_EVENTS)]  # type: ignore[misc]

    async def disabled_since(self, view: EndpointView) -> datetime | None:
        """When a disabled endpoint was disabled (its last EndpointDisabled); None if it is not."""
        if view.endpoint.status is not ep.EndpointStatus.DISABLED:
            return None
        times = [
            e.disabled_at
            for e in await self._history(view.endpoint.endpoint_id)
            if isinstance(e, EndpointDisabled)
        ]
        return times[-1] if times else view.endpoint.updated_at

    async def sent_headers(
        self, delivery: DeliveryView, attempts: Sequence[AttemptView], body: str
    ) -> list[tuple[tuple[str, str], ...]]:
        """The request headers of each attempt, as the worker built them at its start."""
        history = await self._history(delivery.delivery.endpoint_id)
        d = delivery.delivery
        sent = []
        for attempt in attempts:
            state = ep.initial_state()
            for event in history:
                after = ep.evolve(state, event)
                if after.updated_at is not None and after.updated_at > attempt.started_at:
                    break
                state = after
            sent.append(
                delivery_headers(
                    self.signer,
                    state,
                    body=body.encode("utf-8"),
                    event_id=d.event_id,
                    event_type=d.event_type,
                    delivery_id=d.delivery_id,
                    attempt=attempt.attempt,
                    now=attempt.started_at,
                    user_agent=self.user_agent,
                    test=d.test,
                )
            )
        return sent
