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
from typing import Any, ClassVar

from attrs import field, frozen

from ...adapters.payloads import OMIT_IF_NONE
from ...core.catalog import EVENT_TYPES, payload_class
from ...core.views import AttemptView, EndpointView
from ..services import DeliveryRecord, EventRecord
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
    "PublishEvent",
    "Published",
    "RecoverResult",
    "RotateSecret",
    "SecretBody",
    "SendTest",
    "SentTest",
    "Webhook",
    "WebhookChanges",
    "WebhookList",
    "attempt_body",
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


@frozen
class WebhookChanges:
    """A partial update: fields left out (or null) keep their value; give at least one."""

    needs_one_of: ClassVar[tuple[str, ...]] = ("url", "events", "description", "standard_webhooks")
    url: str | None = field(default=None, metadata=schema(shapes.URL))
    events: tuple[str, ...] | None = field(default=None, metadata=schema(shapes.EVENT_TYPE_LIST))
    description: str | None = field(default=None, metadata=schema(shapes.DESCRIPTION))
    standard_webhooks: bool | None = field(default=None, metadata=schema(shapes.BOOLEAN))


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
    status: str
    standard_webhooks: bool
    created_at: datetime
    updated_at: datetime
    disabled_reason: str | None = None
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

    type: str | None = field(default=None, metadata=schema(shapes.EVENT_TYPE))


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
    error: str | None
    detail: str
    response_body: str


@frozen
class Delivery:
    """One event's delivery to one webhook, with every attempt (oldest first)."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: str
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
    """One event type of the catalog: its payload's JSON Schema and an example ``data``."""

    type: str
    description: str
    schema: Mapping[str, Any]
    example: Mapping[str, Any]


@frozen
class EventTypeList:
    data: tuple[EventType, ...]


# --- read models to bodies -------------------------------------------------------------------------


def webhook_body(view: EndpointView, *, with_secret: bool = False) -> Webhook:
    endpoint = view.endpoint
    assert endpoint.created_at is not None
    assert endpoint.updated_at is not None
    return Webhook(
        id=endpoint.endpoint_id,
        url=endpoint.url,
        events=endpoint.event_types,
        description=endpoint.description,
        status=endpoint.status.value,
        standard_webhooks=endpoint.standard_webhooks,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        disabled_reason=endpoint.disabled_reason.value if endpoint.disabled_reason else None,
        previous_secret_expires_at=endpoint.previous_secret_expires_at if with_secret else None,
        secret=endpoint.secret if with_secret else None,
    )


def attempt_body(view: AttemptView) -> Attempt:
    return Attempt(
        attempt=view.attempt,
        started_at=view.started_at,
        latency_ms=view.elapsed_ms,
        succeeded=view.succeeded,
        status_code=view.status_code,
        error=view.error.value if view.error else None,
        detail=view.detail,
        response_body=view.response_body,
    )


def delivery_body(record: DeliveryRecord) -> Delivery:
    view, attempts = record.view, record.attempts
    delivery = view.delivery
    return Delivery(
        id=delivery.delivery_id,
        webhook_id=delivery.endpoint_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status=delivery.status.value,
        test=delivery.test,
        created_at=view.created_at,
        updated_at=view.updated_at,
        next_attempt_at=delivery.due_at,
        attempts=tuple(attempt_body(attempt) for attempt in attempts),
    )


def event_body(record: EventRecord) -> Event:
    view = record.view
    return Event(
        id=view.event_id,
        type=view.event_type,
        timestamp=view.occurred_at,
        published_at=view.published_at,
        test=view.test,
        data=json.loads(view.body)["data"],
        deliveries=tuple(delivery_body(delivery) for delivery in record.deliveries),
    )
