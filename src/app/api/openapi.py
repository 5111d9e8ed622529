"""OpenAPI schemas of attrs classes with the JSON's camelCase names.

Litestar's own attrs plugin names properties after the Python fields (snake_case); this one
names them as the converter writes them (``adapters.payloads.camel``), marks optional fields as
not required, refuses unknown properties as the converter does, documents a field with the
``schema`` its metadata gives (``shapes.py``), and documents a class with a ``by_type`` field
(``POST /events``) as one variant per event type, each with that type's payload.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs
from litestar.openapi.spec import OpenAPI, OpenAPIType, Operation, Schema
from litestar.plugins import OpenAPISchemaPluginProtocol
from litestar.typing import FieldDefinition

from ...adapters.payloads import camel, field_hints
from ...core.catalog import Number
from .shapes import NUMBER, SCALAR, TIME

__all__ = ["CamelAttrsSchemaPlugin", "drop_parameter_400s"]

_NULL = Schema(type=OpenAPIType.NULL)


class CamelAttrsSchemaPlugin(OpenAPISchemaPluginProtocol):
    """Schemas for attrs classes, as the public JSON spells them."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return attrs.has(value) or attrs.has(type(value))

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        cls = field_definition.type_
        hints = field_hints(cls)
        fields = attrs.fields(cls)
        schema: Schema = schema_creator.create_component_schema(
            field_definition,
            required=[camel(a.name) for a in fields if a.default is attrs.NOTHING],
            property_fields={
                camel(a.name): FieldDefinition.from_kwarg(hints[a.name], camel(a.name)) for a in fields
            },
        )
        schema.description = inspect.cleandoc(cls.__doc__ or "").replace("``", "`") or None
        schema.additional_properties = False  # the converter refuses unknown keys everywhere
        properties = schema.properties if schema.properties is not None else {}
        by_type: tuple[str, Mapping[str, type]] | None = None
        for a in fields:
            declared = a.metadata.get("schema")
            if declared is not None:
                nullable = a.default is None  # null means "the default" (or "keep") here
                properties[camel(a.name)] = Schema(one_of=[declared, _NULL]) if nullable else declared
            elif hints[a.name] == Number:
                properties[camel(a.name)] = NUMBER
            elif hints[a.name] is datetime:
                properties[camel(a.name)] = TIME
            elif hints[a.name] is Any:
                properties[camel(a.name)] = SCALAR
            counted = a.metadata.get("items")
            if counted is not None and camel(a.name) in properties:
                prop = properties[camel(a.name)]
                if isinstance(prop, Schema):
                    prop.min_items, prop.max_items = counted[0], counted[1]
            if a.metadata.get("by_type"):
                by_type = (camel(a.name), a.metadata["by_type"])
        if by_type is not None:
            return self._variants(schema, *by_type, schema_creator)
        needs_one = getattr(cls, "needs_one_of", ())
        if needs_one:
            # At least one of these fields, not null (an update that changes nothing is a 422).
            schema.any_of = [
                Schema(required=[camel(name)], properties={camel(name): Schema(schema_not=_NULL)})
                for name in needs_one
            ]
        return schema

    @staticmethod
    def _variants(schema: Schema, name: str, by_type: Mapping[str, type], schema_creator: Any) -> Schema:
        """One variant of the object per ``type``, its ``name`` field that type's payload: the
        document then ties the payload to the type, as the check does."""
        variants = []
        for event_type, payload in by_type.items():
            properties = dict(schema.properties or {})
            properties["type"] = Schema(type=OpenAPIType.STRING, enum=[event_type])
            properties[name] = schema_creator.for_field_definition(FieldDefinition.from_annotation(payload))
            variants.append(
                Schema(
                    type=OpenAPIType.OBJECT,
                    title=f"{event_type} event",
                    properties=properties,
                    required=schema.required,
                    additional_properties=False,
                )
            )
        schema.one_of = variants
        schema.properties = None
        schema.required = None
        schema.additional_properties = None
        schema.type = None
        return schema


def drop_parameter_400s(document: OpenAPI) -> None:
    """Remove the ``400 application/json`` Litestar documents on every operation with parameters
    (for its own ValidationException): this API answers a bad parameter with a 422 problem
    (``problems.py``), and a 400 only for an unreadable body, declared where there is one."""
    for item in (document.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method, None)
            if operation is None or not operation.responses:
                continue
            response = operation.responses.get("400")
            content = getattr(response, "content", None) or {}
            if "application/json" in content:
                del operation.responses["400"]
