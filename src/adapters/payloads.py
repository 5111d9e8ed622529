"""The public JSON: one strict cattrs converter between camelCase JSON and attrs classes.

Everything that crosses the public edge (the HTTP API's bodies, the CLI's ``--data``, the
catalog's event payloads) goes through the converter built here, configured in this one place:

- attrs field names are snake_case; their JSON keys are camelCase (``deal_id`` ↔ ``dealId``);
- it is strict: a number is not a string, a boolean is not a number, a list is a JSON array,
  and an unknown key is an error (a typo must not be dropped silently);
- every problem is reported with its JSON path (``data.attribution[0].partnerId``), all at
  once, as ``InvalidPayload``, a ``ValidationError`` of the core;
- datetimes are ISO-8601 with an offset in, ``…Z`` out (``core.wire``).

``json_schema`` derives a JSON Schema from the same classes, so the catalog's published schemas
cannot drift from what is validated.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import Enum
from types import NoneType, UnionType
from typing import Any, TypeVar, Union, cast, get_args, get_origin

import attrs
from cattrs import Converter
from cattrs.cols import homogenous_tuple_structure_factory, is_sequence, list_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ..core.catalog import FieldChange, Number, check_event_type, payload_class
from ..core.errors import ValidationError
from ..core.wire import MAX_SAFE_INTEGER, JsonValue, format_timestamp, parse_timestamp

__all__ = [
    "InvalidPayload",
    "OMIT_IF_NONE",
    "camel",
    "check_event_data",
    "check_events",
    "items",
    "field_hints",
    "json_schema",
    "structure",
    "unstructure",
]

T = TypeVar("T")

#: attrs field metadata: leave the key out of the JSON when the value is None (e.g. a secret).
OMIT_IF_NONE = {"omit_if_none": True}


def items(least: int, most: int, noun: str) -> dict[str, Any]:
    """attrs field metadata of an array field: it holds ``least`` to ``most`` ``noun``s, checked
    before any item is structured (a body of a million events is refused by its length alone)."""
    return {"items": (least, most, noun)}


_CAMEL = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    """``deal_id`` → ``dealId``: the JSON name of an attrs field."""
    return _CAMEL.sub(lambda match: match.group(1).upper(), name)


class InvalidPayload(ValidationError):
    """One or more fields of a JSON document are wrong; ``errors`` lists every (path, reason)."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        first_field, first_reason = errors[0]
        super().__init__(first_field, first_reason)
        self.errors = tuple(errors)


class _Wrong(ValueError):
    """A value of the wrong JSON type or shape; the message says what was expected."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- type resolution --------------------------------------------------------------------------


def field_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of an attrs class. ``JsonValue`` (a recursive alias that
    ``typing`` cannot evaluate) stands for any JSON value."""
    module = __import__(cls.__module__, fromlist=["_"])
    namespace = {**vars(typing), **vars(module), "JsonValue": Any}
    return typing.get_type_hints(cls, globalns=namespace)


# --- the converter ----------------------------------------------------------------------------


def _strict(expected: type, label: str) -> Callable[[object, type], Any]:
    def hook(value: object, _: type) -> Any:
        if type(value) is expected:  # exact: True is not an int
            return value
        raise _Wrong(f"expected {label}, got {_json_type(value)}")

    return hook


def _integer(value: object, _: type) -> int:
    # JSON has one number type: 1034.0 is the integer 1034, as JSON Schema's "integer" says.
    if type(value) is float and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        return int(value)
    if type(value) is int:  # exact: True is not an int
        return value
    raise _Wrong(f"expected an integer, got {_json_type(value)}")


def _number(value: object, _: type) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise _Wrong(f"expected a number, got {_json_type(value)}")


def _float(value: object, _: type) -> float:
    return float(_number(value, float))


def _datetime(value: object, _: type) -> datetime:
    if not isinstance(value, str):
        raise _Wrong(f"expected an ISO-8601 time such as 2024-01-20T15:00:00Z, got {_json_type(value)}")
    try:
        return parse_timestamp(value)
    except ValidationError as error:
        raise _Wrong(error.reason) from None


def _any_json(value: object, _: type) -> Any:
    return value


def _field_change(value: object, _: type) -> FieldChange:
    if type(value) is not dict:
        raise _Wrong(f"expected an object with old and new, got {_json_type(value)}")
    extra = set(value) - {"old", "new"}
    if extra:
        raise ForbiddenExtraKeysError(None, FieldChange, extra)
    missing = [key for key in ("old", "new") if key not in value]
    if missing:
        raise _Wrong(f"needs both old and new (missing {', '.join(missing)})")
    return FieldChange(old=value["old"], new=value["new"])


def _make_converter() -> Converter:
    converter = Converter(detailed_validation=True, forbid_extra_keys=True)
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _integer)
    converter.register_structure_hook(bool, _strict(bool, "true or false"))
    converter.register_structure_hook(float, _float)
    converter.register_structure_hook_func(lambda t: t == Number, _number)
    converter.register_structure_hook(datetime, _datetime)
    converter.register_unstructure_hook(datetime, format_timestamp)
    converter.register_structure_hook_func(lambda t: t is Any, _any_json)

    def is_homogeneous_sequence(t: Any) -> bool:
        return is_sequence(t) and not (get_origin(t) is tuple and Ellipsis not in get_args(t))

    def sequence_factory(t: Any) -> Callable[[object, type], Any]:
        origin = get_origin(t)
        base = (
            homogenous_tuple_structure_factory(t, converter)
            if origin is tuple
            else list_structure_factory(t, converter)
        )

        def hook(value: object, target: type) -> Any:
            if type(value) is not list:
                raise _Wrong(f"expected an array, got {_json_type(value)}")
            return base(value, target)

        return hook

    converter.register_structure_hook_factory(is_homogeneous_sequence, sequence_factory)

    def is_mapping(t: Any) -> bool:
        return get_origin(t) in (Mapping, dict, typing.Mapping)

    def mapping_factory(t: Any) -> Callable[[object, type], Any]:
        value_type = (get_args(t) or (str, Any))[1]
        value_hook = converter.get_structure_hook(value_type)

        def hook(value: object, _: type) -> Any:
            if type(value) is not dict:
                raise _Wrong(f"expected an object, got {_json_type(value)}")
            if value_type is Any:  # each value as it is (``_any_json``): a copy, without a call per key
                return dict(value)
            result: dict[str, Any] = {}
            errors: list[Exception] = []
            for key, item in value.items():
                try:
                    result[key] = value_hook(item, value_type)
                except Exception as error:
                    error.__notes__ = [
                        *getattr(error, "__notes__", []),
                        IterableValidationNote(f"key {key!r}", key, value_type),
                    ]
                    errors.append(error)
            if errors:
                raise IterableValidationError("while structuring an object", errors, dict)
            return result

        return hook

    converter.register_structure_hook_factory(is_mapping, mapping_factory)

    def attrs_structure_factory(cls: type) -> Callable[[object, type], Any]:
        hints = field_hints(cls)
        renames = {
            a.name: override(rename=camel(a.name), struct_hook=converter.get_structure_hook(hints[a.name]))
            for a in attrs.fields(cls)
        }
        base: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cls, converter, _cattrs_forbid_extra_keys=True, **cast(dict[str, Any], renames)
        )
        counted = [
            (a, camel(a.name), a.metadata["items"]) for a in attrs.fields(cls) if "items" in a.metadata
        ]

        def hook(value: object, target: type) -> Any:
            if type(value) is not dict:
                raise _Wrong(f"expected an object, got {_json_type(value)}")
            for a, key, (least, most, noun) in counted:
                found = value.get(key)
                if type(found) is list and not least <= len(found) <= most:
                    wrong = _Wrong(f"holds {len(found):,} {noun}s: give {least} to {most:,}")
                    wrong.__notes__ = [AttributeValidationNote(f"counting {key}", a.name, a.type)]
                    raise ClassValidationError(f"while structuring {cls.__name__}", [wrong], cls)
            return base(value, target)

        return hook

    def attrs_unstructure_factory(cls: type) -> Callable[[Any], dict[str, Any]]:
        renames = {
            a.name: override(
                rename=camel(a.name),
                omit_if_default=bool(a.metadata.get("omit_if_none")) and a.default is None,
            )
            for a in attrs.fields(cls)
        }
        return make_dict_unstructure_fn(cls, converter, **cast(dict[str, Any], renames))

    converter.register_structure_hook_factory(attrs.has, attrs_structure_factory)
    converter.register_unstructure_hook_factory(attrs.has, attrs_unstructure_factory)
    # After the attrs factory, so that it wins: its ``JsonValue`` fields take any JSON value.
    converter.register_structure_hook_func(lambda t: t is FieldChange, _field_change)
    converter.register_unstructure_hook_func(
        lambda t: t is FieldChange, lambda change: {"old": change.old, "new": change.new}
    )
    return converter


_converter = _make_converter()


def structure(value: object, cls: type[T], path: str = "") -> T:
    """``value`` (parsed JSON) as an instance of the attrs class ``cls``; raises InvalidPayload."""
    try:
        return _converter.structure(value, cls)
    except Exception as error:
        raise InvalidPayload(list(_errors(error, path, cls))) from None


def unstructure(value: object) -> Any:
    """An attrs instance (or a list of them) as JSON-ready builtins with camelCase keys."""
    return _converter.unstructure(value)


def check_event_data(event_type: str, data: object, path: str = "data", *, parsed: bool = False) -> None:
    """Check ``data`` against the catalog payload class of ``event_type`` (already known to be
    in the catalog); raise InvalidPayload naming every wrong field. ``parsed``: the data comes
    from a JSON parser, so the C-speed check of ``payload_mirrors`` may answer first."""
    if parsed:
        from .payload_mirrors import passes  # it builds on this module

        if passes(event_type, data):
            return
    structure(data, payload_class(event_type), path)


def check_events(
    events: Sequence[tuple[str, object]], path: str = "events", *, parsed: bool = False
) -> list[str]:
    """Check a batch of ``(type, data)`` pairs: every type in the catalog, every ``data`` against
    its type's payload class. Returns the types as the catalog spells them; raises InvalidPayload
    naming every wrong field of every event, as ``events[3].data.amount``. ``parsed``: as
    ``check_event_data``."""
    types: list[str] = []
    errors: list[tuple[str, str]] = []
    for index, (event_type, data) in enumerate(events):
        at = f"{path}[{index}]"
        try:
            known = check_event_type(event_type, f"{at}.type").value
        except ValidationError as error:
            errors.append((error.field, error.reason))
            types.append(event_type)
            continue
        types.append(known)
        try:
            check_event_data(known, data, f"{at}.data", parsed=parsed)
        except InvalidPayload as error:
            errors += error.errors
    if errors:
        raise InvalidPayload(errors)
    return types


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    if path:
        return f"{path}.{part}"
    return part


def _errors(error: BaseException, path: str, cls: Any) -> Iterator[tuple[str, str]]:
    if isinstance(error, ClassValidationError):
        with_notes, without = error.group_exceptions()
        for sub, attribute_note in with_notes:
            yield from _errors(sub, _join(path, camel(attribute_note.name)), attribute_note.type)
        for sub in without:
            yield from _errors(sub, path, None)
    elif isinstance(error, IterableValidationError):
        with_notes_i, without_i = error.group_exceptions()
        for sub, item_note in with_notes_i:
            yield from _errors(sub, _join(path, item_note.index), item_note.type)
        for sub in without_i:
            yield from _errors(sub, path, None)
    elif isinstance(error, ForbiddenExtraKeysError):
        for key in sorted(error.extra_fields):
            yield _join(path, key), "unknown field"
    elif isinstance(error, KeyError):
        yield path, "required"
    elif isinstance(error, _Wrong):
        yield path, str(error)
    elif isinstance(error, ValidationError):
        yield path, error.reason
    else:
        yield path, f"invalid value ({error})"


# --- JSON Schema ---------------------------------------------------------------------------------


def json_schema(cls: type) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) of the JSON form of the attrs class ``cls``."""
    definitions: dict[str, Any] = {}
    root = _schema_of(cls, definitions)
    schema: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema.update(definitions.pop(cls.__name__) if "$ref" in root else root)
    if definitions:
        schema["$defs"] = definitions
    return schema


def _schema_of(annotation: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    if annotation is Any or annotation == JsonValue:
        return {}
    if annotation == Number:
        return {"type": "number"}
    if annotation is str:
        return {"type": "string"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is datetime:
        return {"type": "string", "format": "date-time"}
    if annotation is NoneType:
        return {"type": "null"}
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return {"type": "string", "enum": [member.value for member in annotation]}
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return {"anyOf": [_schema_of(arg, definitions) for arg in get_args(annotation)]}
    if origin in (tuple, list, Sequence):
        return {"type": "array", "items": _schema_of(get_args(annotation)[0], definitions)}
    if origin in (dict, Mapping):
        return {"type": "object", "additionalProperties": _schema_of(get_args(annotation)[1], definitions)}
    if attrs.has(annotation):
        name = annotation.__name__
        if name not in definitions:
            definitions[name] = {}  # placeholder against recursion
            hints = field_hints(annotation)
            fields = attrs.fields(annotation)
            definitions[name] = {
                "type": "object",
                "description": inspect.cleandoc(annotation.__doc__ or "").replace("``", "`"),
                "properties": {camel(a.name): _schema_of(hints[a.name], definitions) for a in fields},
                "required": [camel(a.name) for a in fields if a.default is attrs.NOTHING],
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON Schema for {annotation!r}")
