"""How handler bodies become bytes and back: a Litestar DTO over the one converter.

Litestar hands a DTO the raw request body and the handler's return value; this one parses the
JSON with msgspec, checks and builds the handler's attrs type with ``adapters.payloads``
(camelCase, strict, every wrong field named), and turns returned attrs values into camelCase
builtins. The OpenAPI schemas of the same types come from ``openapi.CamelAttrsSchemaPlugin``.
"""

from __future__ import annotations

from collections.abc import Collection, Generator
from typing import Any, ClassVar

import attrs
import msgspec
from litestar.dto import AbstractDTO, DTOConfig
from litestar.dto.data_structures import DTOFieldDefinition
from litestar.typing import FieldDefinition

from ...adapters.payloads import structure, unstructure
from ...core.wire import check_depth
from .problems import MalformedBody

__all__ = ["WireDTO", "parse_json"]

_decode = msgspec.json.Decoder().decode


def parse_json(body: bytes) -> Any:
    """The parsed JSON of a request body; MalformedBody (400) if it is empty or not JSON, a
    ValidationError (422) naming where it nests deeper than ``core.wire.MAX_DEPTH``."""
    if not body.strip():
        raise MalformedBody("the request body is empty: send a JSON object")
    check_depth(body)  # before the parser recurses into it
    try:
        return _decode(body)
    except msgspec.DecodeError as error:
        raise MalformedBody(f"the request body is not valid JSON: {error}") from None


class WireDTO(AbstractDTO[Any]):
    """Reads and writes every attrs body of the API (set once, on the app)."""

    config: ClassVar[DTOConfig] = DTOConfig()
    _data_types: ClassVar[dict[str, type[Any]]] = {}

    @classmethod
    def is_supported_model_type_field(cls, field_definition: FieldDefinition) -> bool:
        return attrs.has(field_definition.annotation)

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        if field_definition.name == "data":
            cls._data_types[handler_id] = field_definition.annotation

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Any:
        return schema_creator.for_field_definition(field_definition)

    @classmethod
    def generate_field_definitions(cls, model_type: type[Any]) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()  # not used: this DTO does not build transfer models

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return attrs.has(field_definition.annotation)

    def decode_bytes(self, value: bytes) -> Any:
        target = self._data_types[self.asgi_connection.route_handler.handler_id]
        return structure(parse_json(value), target)

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        target = self._data_types[self.asgi_connection.route_handler.handler_id]
        return structure(value, target)

    def data_to_encodable_type(self, data: Any | Collection[Any]) -> Any:
        return unstructure(data)
