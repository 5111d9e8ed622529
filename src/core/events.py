"""Domain events: the facts the system records. State is always derived from these.

Three kinds of stream:
- an endpoint (a webhook subscription), stream id = the endpoint id ``wh_…``;
- a published webhook event, stream id = ``event_stream(account_id, event_id)``;
- a delivery (one webhook event to one endpoint), stream id = the delivery id ``dlv_…``.
Every event carries the ids and the time it happened; callers pass both in.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from attrs import frozen

from .outcomes import ErrorKind

__all__ = [
    "AttemptAbandoned",
    "AttemptFailed",
    "AttemptSucceeded",
    "BreakerClosed",
    "BreakerOpened",
    "DeliveryCancelled",
    "DeliveryEvent",
    "DeliveryFailed",
    "DeliveryHeld",
    "DeliveryReleased",
    "DeliveryScheduled",
    "DisableReason",
    "DomainEvent",
    "EndpointDeleted",
    "EndpointDisabled",
    "EndpointEnabled",
    "EndpointEvent",
    "EndpointRegistered",
    "EndpointUpdated",
    "EventPublished",
    "RedeliveryRequested",
    "RetryScheduled",
    "SecretRotated",
    "event_stream",
    "time_of",
]


def event_stream(account_id: str, event_id: str) -> str:
    """Stream id of a published event: event ids are unique per account, not globally."""
    return f"event:{account_id}:{event_id}"


# --- endpoints -------------------------------------------------------------------------------


class DisableReason(StrEnum):
    """Why an endpoint stopped receiving deliveries."""

    MANUAL = "manual"
    FAILING = "failing"


@frozen
class EndpointRegistered:
    endpoint_id: str
    account_id: str
    url: str
    event_types: tuple[str, ...]
    secret: str
    description: str
    standard_webhooks: bool
    registered_at: datetime
    #: Deliveries go one at a time, in publish order (ADR 0016); absent from older rows: False.
    ordered: bool = False
    # Flow policies (ADR 0015); events stored before them decode with these defaults.
    rate_limit: int | None = None
    rate_limit_burst: int = 0
    circuit_breaker_threshold: int | None = None


@frozen
class EndpointUpdated:
    """Only the fields that changed are set; None means unchanged. ``rate_limit`` and
    ``circuit_breaker_threshold`` 0 mean "turned off" (None already means "unchanged")."""

    endpoint_id: str
    updated_at: datetime
    url: str | None = None
    event_types: tuple[str, ...] | None = None
    description: str | None = None
    standard_webhooks: bool | None = None
    ordered: bool | None = None
    rate_limit: int | None = None
    rate_limit_burst: int | None = None
    circuit_breaker_threshold: int | None = None


@frozen
class SecretRotated:
    """A new secret signs from now on; the previous one also signs until ``previous_expires_at``."""

    endpoint_id: str
    secret: str
    previous_expires_at: datetime
    rotated_at: datetime


@frozen
class EndpointDisabled:
    endpoint_id: str
    reason: DisableReason
    disabled_at: datetime
    failing_since: datetime | None = None


@frozen
class EndpointEnabled:
    endpoint_id: str
    enabled_at: datetime


@frozen
class EndpointDeleted:
    endpoint_id: str
    deleted_at: datetime


@frozen
class BreakerOpened:
    """``failures`` attempts in a row failed: due deliveries wait, and one probe goes at a time."""

    endpoint_id: str
    failures: int
    opened_at: datetime


@frozen
class BreakerClosed:
    """A probe succeeded (or the breaker was turned off): the deliveries that waited are due."""

    endpoint_id: str
    closed_at: datetime


# --- published events --------------------------------------------------------------------------


@frozen
class EventPublished:
    """A webhook event entered the system. ``body`` is the exact JSON every attempt sends."""

    event_id: str
    account_id: str
    event_type: str
    body: str
    occurred_at: datetime
    published_at: datetime
    test: bool = False


# --- deliveries ---------------------------------------------------------------------------------


@frozen
class DeliveryScheduled:
    """One event is owed to one endpoint. ``held`` when the endpoint was disabled at publish;
    ``ordered`` when it waits in the endpoint's line (ADR 0016), behind the deliveries already
    there."""

    delivery_id: str
    account_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    scheduled_at: datetime
    held: bool = False
    test: bool = False
    ordered: bool = False


@frozen
class DeliveryHeld:
    """The endpoint is disabled: the delivery waits, unattempted, until it is enabled."""

    delivery_id: str
    held_at: datetime


@frozen
class DeliveryReleased:
    """The endpoint is enabled again: a held delivery is due now."""

    delivery_id: str
    released_at: datetime


@frozen
class AttemptSucceeded:
    delivery_id: str
    endpoint_id: str
    attempt: int
    started_at: datetime
    elapsed_ms: float
    status_code: int
    response_body: str


@frozen
class AttemptFailed:
    """A failed attempt: either an HTTP status other than 2xx, or an error with no response."""

    delivery_id: str
    endpoint_id: str
    attempt: int
    started_at: datetime
    elapsed_ms: float
    status_code: int | None
    error: ErrorKind | None
    detail: str
    response_body: str


@frozen
class AttemptAbandoned:
    """Attempt ``attempt`` was started, and its outcome will never be known: the worker making
    it died (noticed when the delivery was claimed again) or was stopped while it ran. The
    receiver may or may not have it; the next attempt has the next number."""

    delivery_id: str
    endpoint_id: str
    attempt: int
    reason: str
    noted_at: datetime


@frozen
class RetryScheduled:
    """Attempt ``attempt`` is due at ``due_at`` (decided at ``scheduled_at``)."""

    delivery_id: str
    attempt: int
    due_at: datetime
    scheduled_at: datetime


@frozen
class DeliveryFailed:
    """Every attempt of the sequence failed; only a manual redelivery tries again."""

    delivery_id: str
    endpoint_id: str
    attempts: int
    failed_at: datetime


@frozen
class RedeliveryRequested:
    """Someone asked to send it again: a fresh attempt sequence starts now. ``ordered``: it
    joins the back of its endpoint's line (ADR 0016)."""

    delivery_id: str
    requested_at: datetime
    ordered: bool = False


@frozen
class DeliveryCancelled:
    """The endpoint was deleted: the delivery will never be attempted again."""

    delivery_id: str
    reason: str
    cancelled_at: datetime


EndpointEvent = (
    EndpointRegistered
    | EndpointUpdated
    | SecretRotated
    | EndpointDisabled
    | EndpointEnabled
    | EndpointDeleted
    | BreakerOpened
    | BreakerClosed
)
DeliveryEvent = (
    DeliveryScheduled
    | DeliveryHeld
    | DeliveryReleased
    | AttemptSucceeded
    | AttemptFailed
    | AttemptAbandoned
    | RetryScheduled
    | DeliveryFailed
    | RedeliveryRequested
    | DeliveryCancelled
)
DomainEvent = EndpointEvent | EventPublished | DeliveryEvent


def time_of(event: DomainEvent) -> datetime:
    """When ``event`` happened."""
    match event:
        case EndpointRegistered():
            return event.registered_at
        case EndpointUpdated():
            return event.updated_at
        case SecretRotated():
            return event.rotated_at
        case EndpointDisabled():
            return event.disabled_at
        case EndpointEnabled():
            return event.enabled_at
        case EndpointDeleted():
            return event.deleted_at
        case BreakerOpened():
            return event.opened_at
        case BreakerClosed():
            return event.closed_at
        case EventPublished():
            return event.published_at
        case DeliveryScheduled():
            return event.scheduled_at
        case DeliveryHeld():
            return event.held_at
        case DeliveryReleased():
            return event.released_at
        case AttemptSucceeded() | AttemptFailed():
            return event.started_at
        case AttemptAbandoned():
            return event.noted_at
        case RetryScheduled():
            return event.scheduled_at
        case DeliveryFailed():
            return event.failed_at
        case RedeliveryRequested():
            return event.requested_at
        case DeliveryCancelled():
            return event.cancelled_at
    raise TypeError(f"not a domain event: {event!r}")
