"""OpenAPI schemas of attrs classes with the JSON's camelCase names.

Litestar's own attrs plugin names properties after the Python fields (snake_case); this one
names them as the converter writes them (``adapters.payloads.camel``), marks optional fields as
not required, and documents a field whose metadata lists ``one_of`` classes (``data`` of
``POST /events``) as one of those classes' schemas.
"""

from __future__ import annotations

import inspect
from typing import Any

import attrs
from litestar.openapi.spec import OpenAPI, Operation, Schema
from litestar.plugins import OpenAPISchemaPluginProtocol
from litestar.typing import FieldDefinition

from ...adapters.payloads import camel, field_hints

__all__ = ["CamelAttrsSchemaPlugin", "drop_parameter_400s"]


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
        for a in fields:
            one_of = a.metadata.get("one_of")
            if one_of and schema.properties is not None:
                schema.properties[camel(a.name)] = Schema(
                    one_of=[
                        schema_creator.for_field_definition(FieldDefinition.from_annotation(c))
                        for c in one_of
                    ],
                    description="The payload of the event's type; see GET /event-types.",
                )
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
