"""msgspec mirrors of the catalog's payload classes: the schema check of a published event's
``data`` at C speed, for data that a JSON parser produced.

``passes(event_type, data)`` answers True only for data that the converter's check
(``payloads.check_event_data``) accepts too: the mirrors are as strict as the converter or
stricter (an integer field refuses ``1034.0``, which the converter takes). False means "ask the
converter", which names every wrong field (or accepts the value after all); so the answer of
the check never changes, only its cost (about 40 µs of cattrs for a 1 KB event, a few µs here).

Only for values a JSON parser made (exact dicts, lists, strings, numbers): msgspec also takes
a tuple where the converter wants a list, which a parser never produces. A payload shape the
mirrors cannot copy exactly (a default, a datetime below the top level, a type not listed
below) has no mirror and always goes to the converter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, get_args, get_origin

import attrs
import msgspec

from ..core.catalog import EVENT_TYPES, Number, payload_class
from ..core.errors import ValidationError
from ..core.wire import JsonValue, parse_timestamp
from .payloads import camel, field_hints

__all__ = ["passes"]


class _Unsupported(TypeError):
    """A payload shape the mirrors do not copy: its events go to the converter."""


def _mirror(annotation: Any, top: bool, times: list[str], name: str) -> Any:
    if annotation in (str, bool, int, float):
        return annotation
    if annotation == Number:
        return int | float
    if annotation is Any or annotation == JsonValue:
        return Any
    if annotation is datetime:
        if not top:
            raise _Unsupported(f"a datetime below the top level ({name})")
        times.append(name)  # a string here, then parsed as the converter parses it
        return str
    origin = get_origin(annotation)
    if origin in (tuple, list, Sequence):
        args = get_args(annotation)
        if origin is tuple and (len(args) != 2 or args[1] is not Ellipsis):
            raise _Unsupported(f"a fixed-length tuple ({name})")
        return list[_mirror(args[0], False, times, name)]  # type: ignore[misc]  # built at run time
    if origin in (dict, Mapping):
        return dict[str, _mirror(get_args(annotation)[1], False, times, name)]  # type: ignore[misc]
    if attrs.has(annotation):
        return _struct(annotation, top, times)
    raise _Unsupported(f"{annotation!r} ({name})")


def _struct(cls: type, top: bool, times: list[str]) -> Any:
    hints = field_hints(cls)
    fields = []
    for a in attrs.fields(cls):
        if a.default is not attrs.NOTHING or a.validator is not None or a.converter is not None:
            raise _Unsupported(f"{cls.__name__}.{a.name} has a default, validator or converter")
        fields.append((camel(a.name), _mirror(hints[a.name], top, times if top else [], camel(a.name))))
    return msgspec.defstruct(f"{cls.__name__}Mirror", fields, forbid_unknown_fields=True)


def _mirrors() -> dict[str, tuple[Any, tuple[str, ...]]]:
    found: dict[str, tuple[Any, tuple[str, ...]]] = {}
    for event_type in EVENT_TYPES:
        times: list[str] = []
        try:
            found[event_type] = (_struct(payload_class(event_type), True, times), tuple(times))
        except _Unsupported:
            continue
    return found


_MIRRORS = _mirrors()


def passes(event_type: str, data: object) -> bool:
    """Whether ``data`` (parsed JSON) certainly passes the schema check of ``event_type``."""
    mirror = _MIRRORS.get(event_type)
    if mirror is None or type(data) is not dict:
        return False
    struct, times = mirror
    try:
        msgspec.convert(data, struct, strict=True)
        for name in times:
            parse_timestamp(data[name])
    except (msgspec.ValidationError, ValidationError):
        return False
    return True
