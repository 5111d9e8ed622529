"""The API's request and response bodies: attrs classes with snake_case fields, camelCase in JSON.

They are the handlers' types, so Litestar builds the OpenAPI document from them (through
``openapi.CamelAttrsSchemaPlugin``) and the one converter (``adapters.payloads``) reads and writes
them: there is no second set of schema classes. Event payloads are the catalog's own classes.
Functions at the bottom map the core's read models to these bodies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast

import attrs
from attrs import field, frozen

from ...adapters.payloads import OMIT_IF_NONE, items
from ...core.catalog import EVENT_TYPES, payload_class
from ...core.delivery import Delivery as CoreDelivery
from ...core.delivery import DeliveryStatus
from ...core.endpoint import Endpoint, EndpointStatus
from ...core.events import DisableReason
from ...core.outcomes import ErrorKind
from ...core.views import AttemptView, DeliveryView, EndpointView, EventView
from ..services import MAX_BATCH, DeliveryRecord, EventRecord
from . import shapes
from .shapes import schema

__all__ = [
    "Attempt",
    "Delivery",
    "DeliveryList",
    "Event",
    "EventType",
    "EventTypeList",
    "NewWebhook",
    "PublishBatch",
    "PublishEvent",
    "Published",
    "PublishedBatch",
    "RecoverResult",
    "RotateSecret",
    "SecretBody",
    "SendTest",
    "SentTest",
    "Webhook",
    "WebhookChanges",
    "WebhookList",
    "DERIVED",
    "INTERNAL",
    "VOCABULARY",
    "attempt_body",
    "derive",
    "delivery_body",
    "event_body",
    "webhook_body",
]

#: What ``data`` of ``POST /events`` may be for each ``type``: the catalog's payloads.
PAYLOADS: dict[str, type] = {event_type: payload_class(event_type) for event_type in EVENT_TYPES}


# --- webhooks -------------------------------------------------------------------------------------


@frozen
class NewWebhook:
    """Register an endpoint. Without a ``secret`` a strong one is generated and returned once."""

    url: str = field(metadata=schema(shapes.URL))
    events: tuple[str, ...] = field(metadata=schema(shapes.EVENT_TYPE_LIST))
    secret: str | None = field(default=None, metadata=schema(shapes.SECRET))
    description: str = field(default="", metadata=schema(shapes.DESCRIPTION))
    standard_webhooks: bool = False
    #: Deliver one event at a time, in publish order (a failing event holds back the later ones).
    ordered: bool = False
    rate_limit: int | None = field(default=None, metadata=schema(shapes.RATE_LIMIT))
    rate_limit_burst: int = field(default=0, metadata=schema(shapes.BURST))
    circuit_breaker_threshold: int | None = field(default=None, metadata=schema(shapes.BREAKER_THRESHOLD))


@frozen
class WebhookChanges:
    """A partial update: fields left out (or null) keep their value; give at least one.
    ``rateLimit`` or ``circuitBreakerThreshold`` 0 turns that policy off."""

    needs_one_of: ClassVar[tuple[str, ...]] = (
        "url",
        "events",
        "description",
        "standard_webhooks",
        "ordered",
        "rate_limit",
        "rate_limit_burst",
        "circuit_breaker_threshold",
    )
    url: str | None = field(default=None, metadata=schema(shapes.URL))
    events: tuple[str, ...] | None = field(default=None, metadata=schema(shapes.EVENT_TYPE_LIST))
    description: str | None = field(default=None, metadata=schema(shapes.DESCRIPTION))
    standard_webhooks: bool | None = field(default=None, metadata=schema(shapes.BOOLEAN))
    ordered: bool | None = field(default=None, metadata=schema(shapes.BOOLEAN))
    rate_limit: int | None = field(default=None, metadata=schema(shapes.RATE_LIMIT))
    rate_limit_burst: int | None = field(default=None, metadata=schema(shapes.BURST))
    circuit_breaker_threshold: int | None = field(default=None, metadata=schema(shapes.BREAKER_THRESHOLD))


@frozen
class RotateSecret:
    """Rotate the signing secret. The old one keeps signing alongside the new one (header
    ``X-Attribution-Signature-Previous``) for ``gracePeriodSeconds`` (default 24 hours)."""

    secret: str | None = field(default=None, metadata=schema(shapes.SECRET))
    grace_period_seconds: int | None = field(default=None, metadata=schema(shapes.GRACE))


@frozen
class Webhook:
    """A registered endpoint. ``secret`` appears only on create, rotate and reveal."""

    id: str
    url: str
    events: tuple[str, ...]
    description: str
    status: EndpointStatus
    standard_webhooks: bool
    ordered: bool
    created_at: datetime
    updated_at: datetime
    disabled_reason: DisableReason | None = None
    #: Flow policies (ADR 0015): null when off. ``circuitBreakerOpenedAt``: open since then.
    rate_limit: int | None = None
    rate_limit_burst: int = 0
    circuit_breaker_threshold: int | None = None
    circuit_breaker_opened_at: datetime | None = None
    previous_secret_expires_at: datetime | None = field(default=None, metadata=OMIT_IF_NONE)
    secret: str | None = field(default=None, metadata=OMIT_IF_NONE)


@frozen
class WebhookList:
    """One page of webhooks, oldest first; pass ``nextCursor`` as ``cursor`` for the next."""

    data: tuple[Webhook, ...]
    next_cursor: str | None = None


@frozen
class SecretBody:
    """The current signing secret."""

    secret: str


@frozen
class SendTest:
    """Send a sample event of ``type`` (default: the first type the webhook subscribes to)."""

    type: str | None = field(default=None, metadata=schema(shapes.SUBSCRIBABLE_TYPE))


@frozen
class SentTest:
    """The test event and its delivery; follow it at ``GET /deliveries/{deliveryId}``."""

    event_id: str
    delivery_id: str


@frozen
class RecoverResult:
    """How many failed deliveries were scheduled again."""

    redelivered: int


# --- deliveries -----------------------------------------------------------------------------------


@frozen
class Attempt:
    """One attempt of a delivery: when, how long, and what came back."""

    attempt: int
    started_at: datetime
    latency_ms: float
    succeeded: bool
    status_code: int | None
    error: ErrorKind | None
    detail: str
    response_body: str


@frozen
class Delivery:
    """One event's delivery to one webhook, with every attempt (oldest first)."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    test: bool
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    attempts: tuple[Attempt, ...]


@frozen
class DeliveryList:
    """One page of deliveries, newest first; pass ``nextCursor`` as ``cursor`` for the next."""

    data: tuple[Delivery, ...]
    next_cursor: str | None = None


# --- events ---------------------------------------------------------------------------------------


@frozen
class PublishEvent:
    """Publish an event to every webhook of the account subscribed to its ``type``.

    ``data`` must match the type's payload schema (see ``GET /event-types``). Give an ``id``
    (``evt_…``) to make publishing idempotent: the same id again is accepted and delivered once.
    """

    type: str
    data: Mapping[str, Any] = field(metadata={"by_type": PAYLOADS})
    id: str | None = field(default=None, metadata=schema(shapes.EVENT_ID))
    timestamp: datetime | None = field(default=None, metadata=schema(shapes.TIME))


@frozen
class Published:
    """The accepted event; ``duplicate`` if this id had been published before."""

    id: str
    delivery_ids: tuple[str, ...]
    duplicate: bool = False


@frozen
class PublishBatch:
    """Publish 1 to 1,000 events in one transaction: all of them, or (on any error) none.

    Each event is a `POST /events` body, checked the same way; an error names its index
    (`events[3].data.amount`). Each `id` is idempotent on its own, within the batch and across
    requests: an event already published is answered with `duplicate` and stored once.
    """

    events: tuple[PublishEvent, ...] = field(metadata=items(1, MAX_BATCH, "event"))


@frozen
class PublishedBatch:
    """A result per event, in the order sent: its id, its new deliveries (or, for a
    `duplicate`, those of the event published before with this id)."""

    events: tuple[Published, ...]


@frozen
class Event:
    """A published event, as its receivers get it, with its deliveries."""

    id: str
    type: str
    timestamp: datetime
    published_at: datetime
    test: bool
    data: Mapping[str, Any]
    deliveries: tuple[Delivery, ...]


@frozen
class EventType:
    """One event type of the catalog: its payload's JSON Schema and an example ``data``;
    ``operational`` for the service's own event types (webhooks may subscribe to them, only the
    service publishes them)."""

    type: str
    description: str
    schema: Mapping[str, Any]
    example: Mapping[str, Any]
    operational: bool = False


@frozen
class EventTypeList:
    data: tuple[EventType, ...]


# --- read models to bodies -------------------------------------------------------------------------

#: The one mapping between the core's names and the API's where they differ (ADR 0006, addendum):
#: the spec's public names stay (a webhook is the core's endpoint; ``events`` its event types),
#: and the core keeps the names its rules use. Every other field has the same name in both
#: (snake_case in Python, camelCase in JSON).
VOCABULARY: Mapping[type, Mapping[str, str]] = {
    Endpoint: {"endpoint_id": "id", "event_types": "events"},
    CoreDelivery: {"delivery_id": "id", "endpoint_id": "webhook_id", "due_at": "next_attempt_at"},
    AttemptView: {"elapsed_ms": "latency_ms"},
    EventView: {"event_id": "id", "event_type": "type", "occurred_at": "timestamp"},
}
#: Core fields the API does not show. Any other core field must appear in the resource: a new
#: field of the state reaches the API without an edit here (tests/api/test_api_resources.py).
INTERNAL: Mapping[type, frozenset[str]] = {
    # The key names the account; never shown. The failure count at opening is the worker's.
    Endpoint: frozenset({"account_id", "previous_secret", "circuit_breaker_failures"}),
    CoreDelivery: frozenset({"account_id", "attempts"}),  # the count of the sequence: the list is shown
    DeliveryView: frozenset({"delivery", "version", "last_attempt_at", "last_status_code", "last_error"}),
    AttemptView: frozenset(),
    EventView: frozenset({"account_id", "body"}),  # ``body`` is shown parsed, as ``data``
}
#: Each resource: the core views it is made of, and its fields that are composed, not copied.
DERIVED: Mapping[type, tuple[tuple[type, ...], frozenset[str]]] = {
    Webhook: ((Endpoint,), frozenset()),
    Attempt: ((AttemptView,), frozenset()),
    Delivery: ((CoreDelivery, DeliveryView), frozenset({"attempts"})),
    Event: ((EventView,), frozenset({"data", "deliveries"})),
}
T = TypeVar("T")


def derive(resource: type[T], *sources: object, **composed: Any) -> T:
    """The ``resource`` made of the core ``sources``: each shown field copied under its API name
    (``VOCABULARY``), the ``composed`` ones given. A core field that the resource lacks, or a
    resource field no source fills, fails here (and in the tests), never silently."""
    values: dict[str, Any] = {}
    for source in sources:
        kind = type(source)
        names, hidden = VOCABULARY.get(kind, {}), INTERNAL[kind]
        for a in attrs.fields(cast(Any, kind)):
            if a.name not in hidden:
                values[names.get(a.name, a.name)] = getattr(source, a.name)
    values.update(composed)
    return resource(**values)


def webhook_body(view: EndpointView, *, with_secret: bool = False) -> Webhook:
    hide = {} if with_secret else {"secret": None, "previous_secret_expires_at": None}
    return derive(Webhook, view.endpoint, **hide)


def attempt_body(view: AttemptView) -> Attempt:
    return derive(Attempt, view)


def delivery_body(record: DeliveryRecord) -> Delivery:
    attempts = tuple(attempt_body(attempt) for attempt in record.attempts)
    return derive(Delivery, record.view.delivery, record.view, attempts=attempts)


def event_body(record: EventRecord) -> Event:
    view = record.view
    deliveries = tuple(delivery_body(delivery) for delivery in record.deliveries)
    return derive(Event, view, data=json.loads(view.body)["data"], deliveries=deliveries)
