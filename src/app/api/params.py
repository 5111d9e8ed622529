"""Query parameters the handlers check themselves, for the same precise errors as bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar.openapi.spec import OpenAPIType
from litestar.params import Parameter

from ...core.delivery import DeliveryStatus
from ...core.errors import ValidationError
from ...core.wire import parse_timestamp

__all__ = [
    "ID_PATTERN",
    "MAX_PAGE",
    "cursor_parameter",
    "id_parameter",
    "limit_parameter",
    "page_size",
    "since_parameter",
    "since_time",
    "status_parameter",
    "statuses",
]

MAX_PAGE = 100
#: The alphabet of ids (``app.services.queries.is_id``), as the OpenAPI document states it.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
#: What a time looks like (``core.wire.parse_timestamp``): RFC 3339 with an offset, at most
#: microseconds, no leap second, a year from 1000 to 9998 (so that any offset stays in range).
TIME_PATTERN = (
    r"^(1[0-9]{3}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _string(**schema: Any) -> dict[str, Any]:
    # The handlers take these parameters as text and check them themselves, for the same precise
    # errors as bodies; the document states what the checks accept (one_of: None drops the
    # "string or null" Litestar derives from ``str | None``).
    return {"one_of": None, "type": OpenAPIType.STRING, **schema}


def id_parameter(what: str) -> Any:
    return Parameter(description=f"The {what}'s id.", schema_extra=_string(pattern=ID_PATTERN))


def limit_parameter(default: int) -> Any:
    return Parameter(
        default=None,
        description=f"Page size, 1 to {MAX_PAGE} (default {default}).",
        schema_extra={"one_of": None, "type": OpenAPIType.INTEGER, "minimum": 1, "maximum": MAX_PAGE},
    )


def cursor_parameter() -> Any:
    return Parameter(
        default=None,
        description="`nextCursor` of the previous page.",
        schema_extra=_string(pattern=ID_PATTERN),
    )


#: ``status=`` filters: the three the spec's log needs, and every exact state.
_STATUS_FILTERS: dict[str, tuple[DeliveryStatus, ...]] = {
    "pending": (DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING, DeliveryStatus.HELD),
    **{status.value: (status,) for status in DeliveryStatus if status is not DeliveryStatus.NEW},
}


def status_parameter() -> Any:
    return Parameter(
        default=None,
        description="pending, succeeded, failed (or scheduled, retrying, held, cancelled).",
        schema_extra=_string(enum=list(_STATUS_FILTERS)),
    )


def since_parameter() -> Any:
    return Parameter(
        default=None,
        required=True,
        description="ISO-8601 time with an offset, e.g. 2024-01-20T15:00:00Z.",
        schema_extra=_string(format="date-time", pattern=TIME_PATTERN),
    )


def page_size(limit: str | None, default: int) -> int:
    if limit is None:
        return default
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE:
        raise ValidationError("limit", f"give a whole number from 1 to {MAX_PAGE}, got {limit!r}")
    return int(limit)


def statuses(status: str | None) -> tuple[DeliveryStatus, ...] | None:
    if status is None:
        return None
    found = _STATUS_FILTERS.get(status)
    if found is None:
        raise ValidationError("status", f"unknown status {status!r}; use one of {', '.join(_STATUS_FILTERS)}")
    return found


def since_time(since: str | None) -> datetime:
    if since is None:
        raise ValidationError("since", "give the time to recover from, e.g. since=2024-01-20T15:00:00Z")
    return parse_timestamp(since, "since")
