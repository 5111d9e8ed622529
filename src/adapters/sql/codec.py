"""How events and folded states become JSON text and back: one private cattrs converter.

A stored event is ``(event_type, schema_version, data)``: the class name, the version of its
payload's shape, and the payload. When an event class changes shape, raise its entry in
``SCHEMA_VERSIONS`` and add an upcaster from the old version to ``UPCASTERS``; rows written
before the change still load, upcast one version at a time, and the log is never rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, get_args

import cattrs
from attrs import field, frozen

from ...core.endpoint import Endpoint
from ...core.events import DomainEvent

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSIONS",
    "UPCASTERS",
    "EndpointStates",
    "EventCodec",
    "StoredEvent",
    "Upcaster",
    "decode_endpoint",
    "encode_endpoint",
    "require_aware",
]

#: Payload (a JSON object) at version n → the same fact at version n + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

EVENT_TYPES: Mapping[str, type[Any]] = {cls.__name__: cls for cls in get_args(DomainEvent)}

#: The current payload version of every event type.
SCHEMA_VERSIONS: Mapping[str, int] = dict.fromkeys(EVENT_TYPES, 1)

#: ``(event type, version n)`` → upcaster to version n + 1. None yet: every type is at version 1.
UPCASTERS: Mapping[tuple[str, int], Upcaster] = {}


def require_aware(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused rather than read in some local zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store takes aware UTC datetimes only")
    return value.astimezone(UTC)


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
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@frozen
class StoredEvent:
    """An event as its row holds it."""

    event_type: str
    schema_version: int
    data: str


@frozen
class EventCodec:
    """Encodes events at their current version; decodes rows of any version it can upcast."""

    versions: Mapping[str, int] = field(factory=lambda: dict(SCHEMA_VERSIONS))
    upcasters: Mapping[tuple[str, int], Upcaster] = field(factory=lambda: dict(UPCASTERS))

    def encode(self, event: DomainEvent) -> StoredEvent:
        cls: type[Any] = type(event)
        name = cls.__name__
        return StoredEvent(name, self.versions[name], _dumps(_unstructure_hook(cls)(event)))

    def decode(self, stored: StoredEvent) -> DomainEvent:
        cls = EVENT_TYPES.get(stored.event_type)
        if cls is None:
            raise ValueError(f"unknown event type {stored.event_type!r} in the event log")
        payload = json.loads(stored.data)
        version = stored.schema_version
        current = self.versions[stored.event_type]
        if version > current:
            raise ValueError(
                f"{stored.event_type} v{version} is newer than this code (v{current}): upgrade the service"
            )
        while version < current:
            upcast = self.upcasters.get((stored.event_type, version))
            if upcast is None:
                raise ValueError(f"no upcaster for {stored.event_type} v{version}")
            payload = upcast(payload)
            version += 1
        event: DomainEvent = _converter.structure(payload, cls)
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
    shared safely; the text is the key, so a changed row is decoded afresh."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._decoded: dict[str, Endpoint] = {}

    def decode(self, text: str) -> Endpoint:
        found = self._decoded.get(text)
        if found is None:
            found = decode_endpoint(text)
            if len(self._decoded) >= self._size:
                self._decoded.clear()  # rare and cheap to refill; no eviction order to keep
            self._decoded[text] = found
        return found
