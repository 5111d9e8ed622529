"""What the OpenAPI document says a request field may hold: as strict as the checks behind it.

Attrs field metadata (``schema=...``) that ``openapi.CamelAttrsSchemaPlugin`` puts in the
document in place of the bare type, so that a client (or a fuzzer) that sends what the document
allows is accepted. Where a check cannot be written as JSON Schema, the description says it.
"""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema

from ...core.catalog import EVENT_TYPES, SUBSCRIBABLE_TYPES
from ...core.endpoint_fields import (
    MAX_DESCRIPTION_LENGTH,
    MAX_ROTATION_GRACE,
    MAX_SECRET_LENGTH,
    MAX_URL_LENGTH,
)
from ...core.flow import MAX_BREAKER_THRESHOLD, MAX_BURST, MAX_RATE_LIMIT
from ...core.wire import MAX_SAFE_INTEGER
from .params import ID_PATTERN, TIME_PATTERN

__all__ = [
    "BOOLEAN",
    "BREAKER_THRESHOLD",
    "BURST",
    "DESCRIPTION",
    "EVENT_ID",
    "EVENT_TYPE",
    "EVENT_TYPE_LIST",
    "GRACE",
    "RATE_LIMIT",
    "NUMBER",
    "SCALAR",
    "SECRET",
    "TIME",
    "URL",
    "schema",
]

#: Characters a URL may not hold: white space (as ``str.isspace`` sees it) and control characters.
_NOT_IN_URL = r"\s\x00-\x1f\x7f\x85"
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
#: A host name whose last label starts with a letter (so it is never read as a number), or a
#: dotted IPv4 address.
_HOST = rf"(([A-Za-z0-9_-]{{1,20}}\.){{0,5}}[A-Za-z_-][A-Za-z0-9_-]{{0,19}}\.?|({_OCTET}\.){{3}}{_OCTET})"
#: What registration accepts (``core.endpoint.validate_url``, ``adapters.http.hosts``) as a
#: pattern: http(s), no user info (refused: issue 10.9), a host, an optional port from 1 to
#: 65535, then any path
#: and query without white space or a #fragment. Registration also takes what this does not
#: state (international names, IPv6 literals, the other IPv4 spellings); production mode also
#: requires https and refuses hosts that resolve to internal addresses.
_URL_PATTERN = (
    rf"^[Hh][Tt][Tt][Pp][Ss]?://{_HOST}"
    rf"(:{_PORT}?)?([/?][^{_NOT_IN_URL}#]*)?$"
)


def schema(value: Schema) -> dict[str, Any]:
    """Field metadata: document the field with ``value``."""
    return {"schema": value}


URL = Schema(
    type=OpenAPIType.STRING,
    min_length=1,
    max_length=MAX_URL_LENGTH,
    pattern=_URL_PATTERN,
    description="Where events are POSTed: http(s), no #fragment; https only in production mode.",
)
BOOLEAN = Schema(type=OpenAPIType.BOOLEAN)
EVENT_TYPE = Schema(type=OpenAPIType.STRING, enum=list(EVENT_TYPES))
SUBSCRIBABLE_TYPE = Schema(type=OpenAPIType.STRING, enum=list(SUBSCRIBABLE_TYPES))
EVENT_TYPE_LIST = Schema(
    type=OpenAPIType.ARRAY,
    min_items=1,
    items=SUBSCRIBABLE_TYPE,
    description="At least one event type: the spec's, or the operational ones (see GET /event-types).",
)
SECRET = Schema(
    type=OpenAPIType.STRING,
    min_length=16,
    max_length=MAX_SECRET_LENGTH,
    pattern=r"^[!-~]+$",
    description="Printable ASCII without spaces, with at least 8 different characters.",
)
DESCRIPTION = Schema(type=OpenAPIType.STRING, max_length=MAX_DESCRIPTION_LENGTH)
GRACE = Schema(
    type=OpenAPIType.INTEGER,
    minimum=0,
    maximum=int(MAX_ROTATION_GRACE.total_seconds()),
    description="How long the old secret keeps signing, in seconds (default 86400).",
)
RATE_LIMIT = Schema(
    type=OpenAPIType.INTEGER,
    minimum=0,
    maximum=MAX_RATE_LIMIT,
    description=(
        "At most this many deliveries per second to the webhook (paced, never dropped); 0 or null: no limit."
    ),
)
BURST = Schema(
    type=OpenAPIType.INTEGER,
    minimum=0,
    maximum=MAX_BURST,
    description="How many deliveries beyond the rate may go at once (default 0: evenly paced).",
)
BREAKER_THRESHOLD = Schema(
    type=OpenAPIType.INTEGER,
    minimum=0,
    maximum=MAX_BREAKER_THRESHOLD,
    description=(
        "Open the circuit breaker after this many failed attempts in a row: deliveries then wait "
        "(not failed, not counted) while one probe goes at a growing interval; 0 or null: no breaker."
    ),
)
EVENT_ID = Schema(
    type=OpenAPIType.STRING,
    pattern=r"^evt_[A-Za-z0-9][A-Za-z0-9_.\-]{0,123}$",
    description="Your id for the event (`evt_…`): publishing it again is accepted once.",
)
TIME = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME, pattern=TIME_PATTERN)
#: A JSON number JavaScript holds exactly (I-JSON): integers within ±(2^53-1).
NUMBER = Schema(type=OpenAPIType.NUMBER, minimum=-MAX_SAFE_INTEGER, maximum=MAX_SAFE_INTEGER)
#: Any JSON value would do up to the nesting limit; the document promises scalars.
SCALAR = Schema(
    one_of=[
        Schema(type=OpenAPIType.STRING),
        NUMBER,
        Schema(type=OpenAPIType.BOOLEAN),
        Schema(type=OpenAPIType.NULL),
    ],
    description="Any JSON value (nested at most 64 deep); numbers within ±(2^53-1).",
)
ID = Schema(type=OpenAPIType.STRING, pattern=ID_PATTERN)
