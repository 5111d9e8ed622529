"""The flow invariants (ADR 0015): rate limits hold in every one-second window, an open breaker
lets one probe through at a time, and a delivery held back by either waited without losing an
attempt; deliveries that never ended say why.

The checker reads the policies from the endpoints' own events, not from the core's state.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime, timedelta
from itertools import pairwise

from ...core.events import (
    AttemptAbandoned,
    BreakerClosed,
    BreakerOpened,
    DeliveryScheduled,
    EndpointEnabled,
    EndpointRegistered,
    EndpointUpdated,
    time_of,
)
from ...core.flow import BreakerRules
from .model import EndpointHistory, Record
from .result import Crash
from .scenarios import offset

__all__ = ["breaker_open_at_end", "breaker_open_between", "check_flow", "rate_limited"]

_WINDOW = timedelta(seconds=1)
_FIRST_PROBE = BreakerRules().first_probe_after


def rate_limited(history: EndpointHistory) -> tuple[int, int] | None:
    """The endpoint's rate limit and burst, if it was ever given one."""
    limit: tuple[int, int] | None = None
    for _, event in history.events:
        if isinstance(event, EndpointRegistered) and event.rate_limit is not None:
            limit = (event.rate_limit, event.rate_limit_burst)
        elif isinstance(event, EndpointUpdated) and event.rate_limit is not None:
            limit = None if event.rate_limit == 0 else (event.rate_limit, limit[1] if limit else 0)
    return limit


def _open_spells(history: EndpointHistory) -> list[tuple[datetime, datetime | None]]:
    """When the breaker was open: from each opening to its closing (None: still open)."""
    spells: list[tuple[datetime, datetime | None]] = []
    opened: datetime | None = None
    for _, event in history.events:
        if isinstance(event, BreakerOpened) and opened is None:
            opened = event.opened_at
        elif isinstance(event, BreakerClosed | EndpointEnabled) and opened is not None:
            spells.append((opened, time_of(event)))
            opened = None
    if opened is not None:
        spells.append((opened, None))
    return spells


def breaker_open_between(history: EndpointHistory, start: datetime, end: datetime) -> bool:
    """Was the endpoint's breaker open at any moment in [start, end]?"""
    return any(
        opened <= end and (closed is None or closed >= start) for opened, closed in _open_spells(history)
    )


def breaker_open_at_end(history: EndpointHistory) -> bool:
    spells = _open_spells(history)
    return bool(spells) and spells[-1][1] is None


def check_flow(record: Record) -> list[str]:
    """Every flow invariant violated by the run, as sentences."""
    violations: list[str] = []
    starts: dict[str, list[datetime]] = {}
    endpoint_of: dict[str, str] = {}
    for delivery_id, events in record.streams.items():
        first = events[0][1]
        assert isinstance(first, DeliveryScheduled)
        endpoint_of[delivery_id] = first.endpoint_id
    for request in record.result.requests:
        endpoint_id = endpoint_of[request.headers["X-Attribution-Delivery-Id"]]
        starts.setdefault(endpoint_id, []).append(request.started_at)
    for endpoint_id, history in record.histories.items():
        times = sorted(starts.get(endpoint_id, []))
        limit = rate_limited(history)
        if limit is not None:
            violations += _check_window(endpoint_id, times, *limit)
        for opened, closed in _open_spells(history):
            violations += _check_probes(endpoint_id, times, opened, closed)
    violations += _check_abandoned(record)
    return violations


def _check_window(endpoint_id: str, times: list[datetime], rate: int, burst: int) -> list[str]:
    """No window [t, t + 1 s) holds more than rate + burst attempts of the endpoint."""
    for index, start in enumerate(times):
        inside = bisect_left(times, start + _WINDOW) - index
        if inside > rate + burst:
            return [
                f"endpoint {endpoint_id}: {inside} attempts in the second from {offset(start)}, "
                f"its limit is {rate}/s with a burst of {burst}"
            ]
    return []


def _check_probes(
    endpoint_id: str, times: list[datetime], opened: datetime, closed: datetime | None
) -> list[str]:
    """While the breaker is open, attempts are single probes, at least the first probe
    interval apart (the interval only grows)."""
    during = [t for t in times if t > opened and (closed is None or t < closed)]
    if during and during[0] < opened + _FIRST_PROBE:
        return [
            f"endpoint {endpoint_id}: probe at {offset(during[0])}, the breaker opened at {offset(opened)}"
        ]
    for earlier, later in pairwise(during):
        if later - earlier < _FIRST_PROBE:
            return [
                f"endpoint {endpoint_id}: attempts at {offset(earlier)} and {offset(later)} "
                f"while its breaker was open (one probe at a time)"
            ]
    return []


def _check_abandoned(record: Record) -> list[str]:
    """Held back is not attempted: an attempt is logged as abandoned only if a worker crashed or
    stopped while it could have been in flight, never for a delivery paced or held by a policy."""
    crashes: list[Crash] = record.result.crashes
    violations = []
    for delivery_id, events in record.streams.items():
        for _, event in events:
            if isinstance(event, AttemptAbandoned) and not crashes:
                violations.append(
                    f"delivery {delivery_id}: attempt {event.attempt} abandoned without a crash"
                )
    return violations
