"""What the dashboard's pages read, through the use cases (``WebhookService``) and the ports.

Writes all go through the service's commands; the reads here add only what a page needs and the
API does not: health over a window, the log's extra filters, and the headers an attempt sent,
rebuilt from the event log (the endpoint's state at the attempt's time, signed again).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from attrs import frozen

from ...adapters.signing import HmacSigner
from ...core import endpoint as ep
from ...core.delivery import DeliveryStatus
from ...core.events import EndpointDisabled, EndpointEvent
from ...core.services import WebhookService
from ...core.signing import delivery_headers
from ...core.views import AttemptView, DeliveryView, EndpointHealth, EndpointView

__all__ = ["HEALTH_WINDOW", "LogFilter", "LogPage", "attempt_headers", "disabled_since", "health", "log_page"]

HEALTH_WINDOW = timedelta(hours=24)


@frozen
class LogFilter:
    """The delivery log's filters, all optional."""

    endpoint_id: str | None = None
    statuses: Collection[DeliveryStatus] | None = None
    event_type: str | None = None
    created_from: datetime | None = None
    created_until: datetime | None = None


@frozen
class LogPage:
    rows: Sequence[DeliveryView]
    next_cursor: str | None


async def log_page(
    service: WebhookService, account: str, wanted: LogFilter, cursor: str | None, size: int
) -> LogPage:
    """One page of the account's deliveries, newest first; ``next_cursor`` if there are more."""
    if wanted.endpoint_id is not None:
        await service.endpoint(account, wanted.endpoint_id)  # NotFound for another account's id
    views = await service.store.deliveries(
        account,
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


async def health(service: WebhookService, account: str) -> Mapping[str, EndpointHealth]:
    """Each endpoint's attempts over the last ``HEALTH_WINDOW``."""
    return await service.store.endpoint_health(account, service.clock.now() - HEALTH_WINDOW)


async def _endpoint_events(service: WebhookService, endpoint_id: str) -> list[EndpointEvent]:
    recorded = await service.store.read(endpoint_id)
    kinds: tuple[type, ...] = EndpointEvent.__args__  # a union's member classes
    return [r.event for r in recorded if isinstance(r.event, kinds)]  # type: ignore[misc]


async def disabled_since(service: WebhookService, view: EndpointView) -> datetime | None:
    """When a disabled endpoint was disabled (its last EndpointDisabled); None if it is enabled."""
    if view.endpoint.status is not ep.EndpointStatus.DISABLED:
        return None
    events = await _endpoint_events(service, view.endpoint.endpoint_id)
    times = [e.disabled_at for e in events if isinstance(e, EndpointDisabled)]
    return times[-1] if times else view.endpoint.updated_at


async def attempt_headers(
    service: WebhookService,
    delivery: DeliveryView,
    attempts: Sequence[AttemptView],
    body: str,
    user_agent: str,
) -> list[tuple[tuple[str, str], ...]]:
    """The request headers of each attempt, as sent: the endpoint's state is folded from its
    events up to the attempt's start, so a rotated secret signs as it did then."""
    events = await _endpoint_events(service, delivery.delivery.endpoint_id)
    signer = HmacSigner()
    sent = []
    for attempt in attempts:
        state = ep.initial_state()
        for event in events:
            after = ep.evolve(state, event)
            if after.updated_at is not None and after.updated_at > attempt.started_at:
                break
            state = after
        d = delivery.delivery
        sent.append(
            delivery_headers(
                signer,
                state,
                body=body.encode("utf-8"),
                event_id=d.event_id,
                event_type=d.event_type,
                delivery_id=d.delivery_id,
                attempt=attempt.attempt,
                now=attempt.started_at,
                user_agent=user_agent,
                test=d.test,
            )
        )
    return sent
