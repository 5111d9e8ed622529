"""The ordered-delivery invariants (ADR 0016), on the checker's own model of the lines.

A delivery joins its endpoint's line when it is scheduled, or redelivered, while the endpoint is
ordered (and it is no test); its place is that event's log position; it leaves when it succeeds,
fails for good or is cancelled. The checker rebuilds the lines from the log alone, then checks
the network's record against them: every request of a delivery in line starts only once every
delivery ahead of it has left (so first successful receipts come in publish order, and one
delivery at a time is attempted), and requests to a line never overlap.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta

from attrs import define, field

from ...core.events import (
    AttemptSucceeded,
    DeliveryCancelled,
    DeliveryFailed,
    DeliveryScheduled,
    RedeliveryRequested,
)
from ..fakes import SentRequest
from .model import Record
from .scenarios import offset

__all__ = ["Lines", "Place", "check_ordering"]


@define
class Place:
    """One stay of a delivery in its endpoint's line."""

    endpoint_id: str
    delivery_id: str
    joined: int  # the log position that gave it its place
    joined_at: datetime
    left_at: datetime | None = None  # None: still in line at the end
    #: When every delivery ahead of it had left: from then on it heads the line (None: at once).
    head_since: datetime | None = None
    #: A delivery ahead of it never left the line: it never came to head it.
    blocked: bool = False


@define
class Lines:
    """Every ordered endpoint's line over the run, and which stay a request belongs to."""

    lines: dict[str, list[Place]] = field(factory=dict)
    stays: dict[str, list[Place]] = field(factory=dict)  # by delivery id, in time order

    @classmethod
    def of(cls, record: Record) -> Lines:
        found = cls()
        for delivery_id, events in record.streams.items():
            first = events[0][1]
            assert isinstance(first, DeliveryScheduled)
            place: Place | None = None
            for position, event in events:
                if isinstance(event, DeliveryScheduled | RedeliveryRequested) and event.ordered:
                    joined_at = (
                        event.scheduled_at if isinstance(event, DeliveryScheduled) else event.requested_at
                    )
                    place = Place(first.endpoint_id, delivery_id, position, joined_at)
                    found.lines.setdefault(first.endpoint_id, []).append(place)
                    found.stays.setdefault(delivery_id, []).append(place)
                elif place is not None and isinstance(event, AttemptSucceeded):
                    sent = record.sent(delivery_id, event)
                    finished = sent.finished_at if sent is not None else None
                    place.left_at = finished or event.started_at + timedelta(milliseconds=event.elapsed_ms)
                    place = None
                elif place is not None and isinstance(event, DeliveryFailed | DeliveryCancelled):
                    place.left_at = (
                        event.failed_at if isinstance(event, DeliveryFailed) else event.cancelled_at
                    )
                    place = None
        for line in found.lines.values():
            line.sort(key=lambda p: p.joined)
            ahead: datetime | None = None
            blocked = False
            for place in line:
                place.head_since, place.blocked = ahead, blocked
                if place.left_at is None:
                    blocked = True
                elif ahead is None or place.left_at > ahead:
                    ahead = place.left_at
        return found

    def stay_at(self, delivery_id: str, moment: datetime) -> Place | None:
        """The stay in line of ``delivery_id`` that ``moment`` falls in, if any."""
        stays = self.stays.get(delivery_id, [])
        index = bisect_right([s.joined_at for s in stays], moment) - 1
        if index < 0:
            return None
        stay = stays[index]
        return stay if stay.left_at is None or moment <= stay.left_at else None

    def waiting_behind(self, delivery_id: str) -> bool:
        """Is ``delivery_id`` in a line at the end, behind a delivery that never left it?"""
        stays = self.stays.get(delivery_id, [])
        return bool(stays) and stays[-1].left_at is None and stays[-1].blocked

    def due_from(self, delivery_id: str, due_at: datetime, moment: datetime) -> datetime:
        """When an attempt made at ``moment`` was due, counting the wait for the line ahead."""
        stay = self.stay_at(delivery_id, moment)
        if stay is None or stay.head_since is None:
            return due_at
        return max(due_at, stay.head_since)


def check_ordering(record: Record, lines: Lines) -> list[str]:
    """Joins follow the endpoint's setting; a delivery in line is attempted only after every one
    ahead of it has left the line; attempts to a line never overlap."""
    violations = _check_joins(record)
    in_line: dict[str, list[tuple[SentRequest, Place]]] = {}
    for sent in record.result.requests:
        delivery_id = sent.headers["X-Attribution-Delivery-Id"]
        stay = lines.stay_at(delivery_id, sent.started_at)
        if stay is not None:
            in_line.setdefault(stay.endpoint_id, []).append((sent, stay))
    for endpoint_id, requests in in_line.items():
        line = lines.lines[endpoint_id]
        for sent, stay in requests:
            where = (
                f"request {stay.delivery_id}#{sent.headers['X-Attribution-Attempt']} at "
                f"{offset(sent.started_at)} to ordered endpoint {endpoint_id}"
            )
            ahead = [
                p
                for p in line
                if p.joined < stay.joined and (p.left_at is None or p.left_at > sent.started_at)
            ]
            if ahead:
                first = ahead[0]
                until = "the end" if first.left_at is None else offset(first.left_at)
                violations.append(
                    f"{where} went while {first.delivery_id}, ahead of it in line, waited until {until}"
                )
        violations += _check_overlaps(endpoint_id, [sent for sent, _ in requests])
        violations += _check_receipts(endpoint_id, requests)
    return violations


def _check_joins(record: Record) -> list[str]:
    """A delivery joins a line exactly when its endpoint was ordered as it was scheduled or
    redelivered, and it is no test send."""
    violations: list[str] = []
    for delivery_id, events in record.streams.items():
        first = events[0][1]
        assert isinstance(first, DeliveryScheduled)
        history = record.histories[first.endpoint_id]
        for position, event in events:
            if isinstance(event, DeliveryScheduled | RedeliveryRequested):
                expected = history.before(position).ordered and not first.test
                if event.ordered != expected:
                    violations.append(
                        f"delivery {delivery_id}: {type(event).__name__} ordered={event.ordered}, "
                        f"but its endpoint's setting then says {expected}"
                    )
    return violations


def _check_overlaps(endpoint_id: str, requests: list[SentRequest]) -> list[str]:
    """One attempt at a time: a request to the line starts once the previous one has finished
    (requests cut short by a crash never finish, and are the lease's business)."""
    finished = sorted((s for s in requests if s.finished_at is not None), key=lambda s: s.started_at)
    violations: list[str] = []
    busy_until: datetime | None = None
    for sent in finished:
        assert sent.finished_at is not None
        if busy_until is not None and sent.started_at < busy_until:
            name = f"{sent.headers['X-Attribution-Delivery-Id']}#{sent.headers['X-Attribution-Attempt']}"
            violations.append(
                f"request {name} to ordered endpoint {endpoint_id} started at "
                f"{offset(sent.started_at)}, before the one in flight finished at {offset(busy_until)}"
            )
        busy_until = sent.finished_at if busy_until is None else max(busy_until, sent.finished_at)
    return violations


def _check_receipts(endpoint_id: str, requests: list[tuple[SentRequest, Place]]) -> list[str]:
    """The receiver's first successful receipt of each stay comes in line (publish) order."""
    first: dict[int, datetime] = {}
    for sent, stay in requests:
        if sent.delivered and sent.finished_at is not None:
            earlier = first.get(stay.joined)
            first[stay.joined] = sent.finished_at if earlier is None else min(earlier, sent.finished_at)
    received = sorted(first, key=lambda joined: (first[joined], joined))
    if received != sorted(received):
        return [
            f"ordered endpoint {endpoint_id} received its deliveries in the order {received} (log positions)"
        ]
    return []
