"""The event catalog: the four event types of the public spec and their payloads, and the
system's operational event types (``core.operational``), which webhooks may subscribe to but
only the service publishes.

Payloads are typed values with snake_case fields; their JSON form (camelCase keys, as in the spec)
is produced at the edge by the adapters' converter, never by methods on these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from attrs import frozen

from .errors import UnknownEventType, ValidationError
from .operational import (
    OPERATIONAL_TYPES,
    DeliveryExhausted,
    OperationalType,
    WebhookDisabled,
    WebhookFailing,
)
from .wire import JsonValue

__all__ = [
    "EVENT_TYPES",
    "AttributionShare",
    "DealAttributed",
    "EventTracked",
    "EventType",
    "FieldChange",
    "PartnerCreated",
    "PartnerUpdated",
    "Payload",
    "SUBSCRIBABLE_TYPES",
    "check_event_type",
    "check_subscribable_type",
    "payload_class",
]


class EventType(StrEnum):
    """The event types a webhook can subscribe to."""

    DEAL_ATTRIBUTED = "deal.attributed"
    PARTNER_CREATED = "partner.created"
    PARTNER_UPDATED = "partner.updated"
    EVENT_TRACKED = "event.tracked"


EVENT_TYPES: tuple[str, ...] = tuple(member.value for member in EventType)
#: What a webhook may subscribe to: the spec's types, then the operational ones.
SUBSCRIBABLE_TYPES: tuple[str, ...] = EVENT_TYPES + OPERATIONAL_TYPES

Number = int | float


@frozen
class AttributionShare:
    """One partner's credit for a deal."""

    partner_id: str
    partner_name: str
    credit: Number
    percentage: Number


@frozen
class DealAttributed:
    """``deal.attributed``: a deal was attributed to partners by an attribution model."""

    deal_id: str
    amount: Number
    closed_at: datetime
    model: str
    attribution: tuple[AttributionShare, ...]


@frozen
class PartnerCreated:
    """``partner.created``: a new partner exists."""

    id: str
    name: str
    type: str
    status: str


@frozen
class FieldChange:
    """The old and new value of one changed partner field."""

    old: JsonValue
    new: JsonValue


@frozen
class PartnerUpdated:
    """``partner.updated``: a partner changed; ``changes`` names each changed field."""

    id: str
    name: str
    status: str
    changes: Mapping[str, FieldChange]


@frozen
class EventTracked:
    """``event.tracked``: a tracked event (click, signup, ...) was recorded. High volume."""

    id: str
    user_id: str
    partner_id: str
    type: str


Payload = DealAttributed | PartnerCreated | PartnerUpdated | EventTracked
OperationalPayload = WebhookDisabled | WebhookFailing | DeliveryExhausted

_PAYLOADS: Mapping[str, type[Payload] | type[OperationalPayload]] = {
    EventType.DEAL_ATTRIBUTED: DealAttributed,
    EventType.PARTNER_CREATED: PartnerCreated,
    EventType.PARTNER_UPDATED: PartnerUpdated,
    EventType.EVENT_TRACKED: EventTracked,
    OperationalType.WEBHOOK_DISABLED: WebhookDisabled,
    OperationalType.WEBHOOK_FAILING: WebhookFailing,
    OperationalType.DELIVERY_EXHAUSTED: DeliveryExhausted,
}


def check_event_type(event_type: object, field: str = "type") -> EventType:
    """Return the catalog member for ``event_type`` or raise UnknownEventType naming ``field``:
    a type one may publish. An operational type is refused with its own reason."""
    try:
        return EventType(event_type)  # type: ignore[arg-type]  # any object may be looked up
    except ValueError:
        if event_type in OPERATIONAL_TYPES:
            raise ValidationError(
                field, f"{event_type} is an operational event type: only the service publishes it"
            ) from None
        raise UnknownEventType(field, str(event_type), EVENT_TYPES) from None


def check_subscribable_type(event_type: object, field: str = "type") -> EventType | OperationalType:
    """Return the member for ``event_type``, a spec or an operational type (what a webhook may
    subscribe to), or raise UnknownEventType naming ``field``."""
    if event_type in OPERATIONAL_TYPES:
        return OperationalType(event_type)
    try:
        return EventType(event_type)  # type: ignore[arg-type]  # any object may be looked up
    except ValueError:
        raise UnknownEventType(field, str(event_type), SUBSCRIBABLE_TYPES) from None


def payload_class(event_type: str) -> type[Payload] | type[OperationalPayload]:
    """The payload class of a catalog event type, spec or operational."""
    return _PAYLOADS[check_subscribable_type(event_type)]
