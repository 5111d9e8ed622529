"""Query parameters the handlers check themselves, for the same precise errors as bodies."""

from __future__ import annotations

from datetime import datetime

from ...core.delivery import DeliveryStatus
from ...core.errors import ValidationError
from ...core.wire import parse_timestamp

__all__ = ["MAX_PAGE", "page_size", "since_time", "statuses"]

MAX_PAGE = 100

#: ``status=`` filters: the three the spec's log needs, and every exact state.
_STATUS_FILTERS: dict[str, tuple[DeliveryStatus, ...]] = {
    "pending": (DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING, DeliveryStatus.HELD),
    **{status.value: (status,) for status in DeliveryStatus if status is not DeliveryStatus.NEW},
}


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
