"""The event catalog: the four event types of the public spec and their payloads.

Payloads are typed values with snake_case fields; their JSON form (camelCase keys, as in the spec)
is produced at the edge by the adapters' converter, never by methods on these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from attrs import frozen

from .errors import UnknownEventType
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
    "check_event_type",
    "payload_class",
]


class EventType(StrEnum):
    """The event types a webhook can subscribe to."""

    DEAL_ATTRIBUTED = "deal.attributed"
    PARTNER_CREATED = "partner.created"
    PARTNER_UPDATED = "partner.updated"
    EVENT_TRACKED = "event.tracked"


EVENT_TYPES: tuple[str, ...] = tuple(member.value for member in EventType)

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

_PAYLOADS: Mapping[str, type[Payload]] = {
    EventType.DEAL_ATTRIBUTED: DealAttributed,
    EventType.PARTNER_CREATED: PartnerCreated,
    EventType.PARTNER_UPDATED: PartnerUpdated,
    EventType.EVENT_TRACKED: EventTracked,
}


def check_event_type(event_type: object, field: str = "type") -> EventType:
    """Return the catalog member for ``event_type`` or raise UnknownEventType naming ``field``."""
    try:
        return EventType(event_type)  # type: ignore[arg-type]  # any object may be looked up
    except ValueError:
        raise UnknownEventType(field, str(event_type), EVENT_TYPES) from None


def payload_class(event_type: str) -> type[Payload]:
    """The payload class of a catalog event type."""
    return _PAYLOADS[check_event_type(event_type)]
