"""How events and folded states become JSON text and back: one private cattrs converter.

A stored event is ``(event_type, schema_version, data)``: its registered type name (never the
Python class name, so a class can be renamed or moved without touching the log), the version of
its payload's shape, and the payload. ``REGISTRY`` is the one table of names, versions,
upcasters and secret fields. When an event class changes shape, raise its version and add an
upcaster from the old one; rows written before the change still load, upcast one version at a
time, and the log is never rewritten. A name, once written, is never reused for another fact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, get_args

import cattrs
import msgspec
from attrs import field, frozen

from ...core.endpoint import Endpoint
from ...core.events import (
    AttemptAbandoned,
    AttemptFailed,
    AttemptSucceeded,
    BreakerClosed,
    BreakerOpened,
    DeliveryCancelled,
    DeliveryFailed,
    DeliveryHeld,
    DeliveryReleased,
    DeliveryScheduled,
    DomainEvent,
    EndpointDeleted,
    EndpointDisabled,
    EndpointEnabled,
    EndpointRegistered,
    EndpointUpdated,
    EventPublished,
    RedeliveryRequested,
    RetryScheduled,
    SecretRotated,
)

__all__ = [
    "REGISTRY",
    "EndpointStates",
    "EventCodec",
    "EventRegistry",
    "EventType",
    "StoredEvent",
    "Upcaster",
    "decode_endpoint",
    "encode_endpoint",
    "remember_last",
    "require_aware",
]

#: Payload (a JSON object) at version n → the same fact at version n + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@frozen
class EventType:
    """How one event class is stored: ``name`` (stable, written in every row), the current
    payload ``version``, ``upcasters`` from each older version n to n + 1, and the fields that
    hold webhook secrets (sealed before they are written: ``sealing.py``)."""

    name: str
    cls: type[Any]
    version: int = 1
    upcasters: Mapping[int, Upcaster] = field(factory=dict)
    secret_fields: tuple[str, ...] = ()


class EventRegistry:
    """Event types by name and by class; every domain event class must have exactly one."""

    def __init__(self, types: Iterable[EventType]) -> None:
        self._by_name: dict[str, EventType] = {}
        self._by_class: dict[type[Any], EventType] = {}
        for entry in types:
            if entry.name in self._by_name or entry.cls in self._by_class:
                raise ValueError(f"event type {entry.name} ({entry.cls.__name__}) registered twice")
            missing = [v for v in range(1, entry.version) if v not in entry.upcasters]
            if missing:
                raise ValueError(f"{entry.name} v{entry.version} has no upcaster from v{missing[0]}")
            self._by_name[entry.name] = self._by_class[entry.cls] = entry

    @property
    def types(self) -> tuple[EventType, ...]:
        return tuple(self._by_name.values())

    def replace(self, *entries: EventType) -> EventRegistry:
        """This registry with ``entries`` taking the place of the entries of the same names."""
        names = {entry.name for entry in entries}
        return EventRegistry([*(t for t in self.types if t.name not in names), *entries])

    def of_class(self, cls: type[Any]) -> EventType:
        entry = self._by_class.get(cls)
        if entry is None:
            raise ValueError(f"{cls.__name__} is not a registered event type")
        return entry

    def named(self, name: str) -> EventType:
        entry = self._by_name.get(name)
        if entry is None:
            raise ValueError(f"unknown event type {name!r} in the event log")
        return entry


#: The stored names. Changing one orphans every row written under it: add a migration instead.
REGISTRY = EventRegistry(
    [
        EventType("endpoint.registered", EndpointRegistered, secret_fields=("secret",)),
        EventType("endpoint.updated", EndpointUpdated),
        EventType("endpoint.secret_rotated", SecretRotated, secret_fields=("secret",)),
        EventType("endpoint.disabled", EndpointDisabled),
        EventType("endpoint.enabled", EndpointEnabled),
        EventType("endpoint.deleted", EndpointDeleted),
        EventType("endpoint.breaker_opened", BreakerOpened),
        EventType("endpoint.breaker_closed", BreakerClosed),
        EventType("event.published", EventPublished),
        EventType("delivery.scheduled", DeliveryScheduled),
        EventType("delivery.held", DeliveryHeld),
        EventType("delivery.released", DeliveryReleased),
        EventType("delivery.attempt_succeeded", AttemptSucceeded),
        EventType("delivery.attempt_failed", AttemptFailed),
        EventType("delivery.attempt_abandoned", AttemptAbandoned),
        EventType("delivery.retry_scheduled", RetryScheduled),
        EventType("delivery.failed", DeliveryFailed),
        EventType("delivery.redelivery_requested", RedeliveryRequested),
        EventType("delivery.cancelled", DeliveryCancelled),
    ]
)
_unregistered = {cls.__name__ for cls in get_args(DomainEvent)} - {t.cls.__name__ for t in REGISTRY.types}
assert not _unregistered, f"domain events without a stored name: {_unregistered}"


def require_aware(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused rather than read in some local zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store takes aware UTC datetimes only")
    return value.astimezone(UTC)


def remember_last(convert: Callable[[datetime], str]) -> Callable[[datetime], str]:
    """``convert``, giving back its last text when handed the very same time object again: the
    rows of one append share their times (a batch publish writes its ``now`` in every row; one
    ``now`` is several columns of one row). The pair is replaced whole, so a thread that reads it
    sees a matching one."""
    last: list[tuple[datetime | None, str]] = [(None, "")]

    def remembered(value: datetime) -> str:
        seen = last[0]
        if seen[0] is value:
            return seen[1]
        text = convert(value)
        last[0] = (value, text)
        return text

    return remembered


@remember_last
def _unstructure_time(value: datetime) -> str:
    return (value if value.tzinfo is UTC else require_aware(value)).isoformat()


def _structure_time(value: Any, _type: Any) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:  # never written so; read as UTC rather than guess the local zone
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(datetime, _unstructure_time)
    converter.register_structure_hook(datetime, _structure_time)
    return converter


_converter = _make_converter()


# Built once: ``json.dumps`` with options builds a new encoder on every call.
_json_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_msgspec_encode = msgspec.json.Encoder().encode


def _dumps(value: Any) -> str:
    """Compact JSON text of unstructured builtins. msgspec writes it about five times faster
    than ``json`` (an ``event.published`` row holds a 1 KB body: a string to escape) and the
    same text, but for floats in exponent form (``1e16``, not ``1e+16``), which ``json.loads``
    reads alike. What msgspec refuses (a lone surrogate) goes to ``json``, as before."""
    try:
        return _msgspec_encode(value).decode()
    except (TypeError, UnicodeError, msgspec.EncodeError):
        return _json_dumps(value)


@frozen
class StoredEvent:
    """An event as its row holds it."""

    event_type: str
    schema_version: int
    data: str


@frozen
class EventCodec:
    """Encodes events at their current version; decodes rows of any version it can upcast."""

    registry: EventRegistry = REGISTRY

    def encode(self, event: DomainEvent) -> StoredEvent:
        return self.encode_all((event,))[0]

    def encode_all(self, events: Iterable[DomainEvent]) -> list[StoredEvent]:
        """``encode`` of each event: the class's entry and converter looked up once per class."""
        of_class = self.registry.of_class
        found: dict[type[Any], tuple[str, int, Callable[[Any], Any]]] = {}
        stored: list[StoredEvent] = []
        for event in events:
            cls: type[Any] = type(event)
            how = found.get(cls)
            if how is None:
                entry = of_class(cls)
                how = found[cls] = (entry.name, entry.version, _unstructure_hook(cls))
            stored.append(StoredEvent(how[0], how[1], _dumps(how[2](event))))
        return stored

    def decode(self, stored: StoredEvent) -> DomainEvent:
        entry = self.registry.named(stored.event_type)
        payload = json.loads(stored.data)
        version = stored.schema_version
        if version > entry.version:
            raise ValueError(
                f"{entry.name} v{version} is newer than this code (v{entry.version}): upgrade the service"
            )
        while version < entry.version:
            upcast = entry.upcasters.get(version)
            if upcast is None:
                raise ValueError(f"no upcaster for {entry.name} v{version}")
            payload = upcast(payload)
            version += 1
        event: DomainEvent = _converter.structure(payload, entry.cls)
        return event


_UNSTRUCTURE_HOOKS: dict[type[Any], Callable[[Any], Any]] = {}


def _unstructure_hook(cls: type[Any]) -> Callable[[Any], Any]:
    """The converter's function for ``cls``, looked up once rather than dispatched per event."""
    hook = _UNSTRUCTURE_HOOKS.get(cls)
    if hook is None:
        hook = _UNSTRUCTURE_HOOKS[cls] = _converter.get_unstructure_hook(cls)
    return hook


def encode_endpoint(state: Endpoint) -> str:
    """An endpoint's folded state as JSON text (a read model: a rebuild rewrites it)."""
    return _dumps(_unstructure_hook(Endpoint)(state))


def decode_endpoint(text: str) -> Endpoint:
    return _converter.structure(json.loads(text), Endpoint)


class EndpointStates:
    """``decode_endpoint`` with a memory: the endpoint rows that every claim, publish and outcome
    reads hold the same few states again and again. ``Endpoint`` is frozen, so a decoded state is
    shared safely; the text is the key, so a changed row is decoded afresh. ``finish``, if given,
    is applied to the states decoded together (the store opens their sealed secrets there, with
    one key lookup for the lot)."""

    def __init__(
        self, size: int = 4096, finish: Callable[[list[Endpoint]], list[Endpoint]] | None = None
    ) -> None:
        self._size = size
        self._finish = finish
        self._decoded: dict[str, Endpoint] = {}

    def decode(self, text: str) -> Endpoint:
        found = self._decoded.get(text)
        return found if found is not None else self.decode_all([text])[0]

    def decode_all(self, texts: Sequence[str]) -> list[Endpoint]:
        known = self._decoded
        found = {text: known[text] for text in texts if text in known}
        new = [text for text in dict.fromkeys(texts) if text not in found]
        if new:
            states = [decode_endpoint(text) for text in new]
            if self._finish is not None:
                states = self._finish(states)
            fresh = dict(zip(new, states, strict=True))
            if len(known) + len(fresh) > self._size:
                known.clear()  # rare and cheap to refill; no eviction order to keep
            known.update(fresh)
            found.update(fresh)
        return [found[text] for text in texts]

    def clear(self) -> None:
        """Forget every state (secrets have been shredded: an unchanged text may open differently)."""
        self._decoded.clear()
