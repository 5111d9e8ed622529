"""How handler bodies become bytes and back: a Litestar DTO over the one converter.

Litestar hands a DTO the raw request body and the handler's return value; this one parses the
JSON with msgspec, checks and builds the handler's attrs type with ``adapters.payloads``
(camelCase, strict, every wrong field named), and turns returned attrs values into camelCase
builtins. The OpenAPI schemas of the same types come from ``openapi.CamelAttrsSchemaPlugin``.

``Encoded`` is the ingest path's shortcut for the way out: the handler's value encoded once, as
the DTO and Litestar's JSON response would have encoded it, and sent as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import attrs
import msgspec
from litestar import Response
from litestar.datastructures import MutableScopeHeaders
from litestar.dto import AbstractDTO, DTOConfig
from litestar.dto.data_structures import DTOFieldDefinition
from litestar.enums import MediaType
from litestar.response.base import ASGIResponse
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar.background_tasks import BackgroundTask, BackgroundTasks
    from litestar.connection import Request
    from litestar.datastructures import Cookie
    from litestar.types import TypeEncodersMap

from ...adapters.payloads import structure, unstructure
from ...core.wire import check_depth
from .problems import MalformedBody

__all__ = ["Encoded", "WireDTO", "parse_json"]

T = TypeVar("T")
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


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

    @classmethod
    def is_supported_model_type_field(cls, field_definition: FieldDefinition) -> bool:
        return attrs.has(field_definition.annotation)

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        pass  # nothing to build: a body's type is its handler's ``data`` annotation (``_target``)

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

    def _target(self) -> Any:
        # The handler's memoized ``data`` field, the one Litestar passed to
        # ``create_for_field_definition``; not ``handler_id``, which is a string built on every
        # read (a walk of the ownership layers, 3 % of an ingest).
        field = self.asgi_connection.route_handler.parsed_data_field
        assert field is not None, "a body is decoded only for a handler with a data parameter"
        return field.annotation

    def decode_bytes(self, value: bytes) -> Any:
        return structure(parse_json(value), self._target())

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        return structure(value, self._target())

    def data_to_encodable_type(self, data: Any | Collection[Any]) -> Any:
        return unstructure(data)


class Encoded(Response[T]):
    """A JSON answer of an attrs value, encoded when it is made: the bytes that ``WireDTO`` and
    Litestar's rendering of a returned value would send (``unstructure``, then msgspec, which
    writes builtins the same with or without Litestar's hooks), under the same ``content-type``
    and ``content-length`` headers; only cheaper, for the ingest path (issue 12).

    A handler annotated ``-> Encoded[Published]`` is documented as answering ``Published`` (the
    OpenAPI document reads a Response's type argument, and no DTO applies to a Response). Were
    the route to add headers, cookies or a background task, Litestar renders the same bytes.
    """

    __slots__ = ()

    def __init__(self, value: T, *, status_code: int) -> None:
        # What ``Response.__init__`` sets for these arguments, without its ABC checks (a third
        # of its cost) on cookies and headers there are none of.
        self.content = cast(T, _encode(unstructure(value)))
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.headers = {}
        self.media_type = MediaType.JSON
        self.status_code = status_code
        self.response_type_encoders = {}

    def to_asgi_response(
        self,
        app: Any,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        if (
            background
            or cookies
            or encoded_headers
            or headers
            or is_head_response
            or self.headers
            or self.cookies
            or self.background
        ):
            return super().to_asgi_response(
                app,
                request,
                background=background,
                cookies=cookies,
                encoded_headers=encoded_headers,
                headers=headers,
                is_head_response=is_head_response,
                media_type=media_type,
                status_code=status_code,
                type_encoders=type_encoders,
            )
        return _Sent(cast(int, self.status_code), cast(bytes, self.content))


class _Sent(ASGIResponse):
    """The ASGI answer of an ``Encoded``: what ``ASGIResponse.__init__`` makes of a JSON body
    without headers, cookies or a background task (the same two messages), built directly."""

    __slots__ = ()

    def __init__(self, status_code: int, body: bytes) -> None:
        headers = MutableScopeHeaders()
        headers.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        self.headers = headers
        self.background = None
        self.body = body
        self.content_length = len(body)
        self._encoded_cookies = ()
        self.encoding = "utf-8"
        self.is_head_response = False
        self.status_code = status_code
