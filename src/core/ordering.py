"""Ordered delivery (ADR 0016): an ordered endpoint's deliveries wait in a line, and only its
head is in the queue.

A delivery joins its endpoint's line when it is scheduled, or sent again by hand, while the
endpoint is ordered (``DeliveryScheduled.ordered``, ``RedeliveryRequested.ordered``); its place
is the log position of that event, so the line is publish order and a re-send goes to the back.
It stays in line until it is finished (succeeded, failed after its last attempt, or cancelled):
held deliveries keep their place. The head is the delivery with the smallest place; it alone is
claimable, and only when due and not leased, so one attempt at a time reaches the endpoint and
every delivery behind a failing head waits until the head succeeds or exhausts its retries.

These are the rules every store applies in its projection (``queue_entry`` decides the queue
column); the stores only find the head of a line among their rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .delivery import Delivery, DeliveryStatus
from .events import DeliveryEvent, DeliveryScheduled, RedeliveryRequested
from .projections import queue_at

__all__ = ["head_of", "in_line", "line_after", "queue_entry"]

_IN_LINE = frozenset((DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING, DeliveryStatus.HELD))
_ENTERS_LINE = (DeliveryScheduled, RedeliveryRequested)  # a tuple: cheaper to test than a union


def in_line(delivery: Delivery) -> bool:
    """A delivery in a line keeps its place while it is not finished."""
    return delivery.status in _IN_LINE


def line_after(line: int | None, position: int, event: DeliveryEvent, delivery: Delivery) -> int | None:
    """The delivery's place in its endpoint's line after ``event``, recorded at log position
    ``position``, which left the delivery as ``delivery``; None when it is in no line."""
    if isinstance(event, _ENTERS_LINE):
        return position if event.ordered and in_line(delivery) else None
    return line if line is not None and in_line(delivery) else None


def head_of(lines: Iterable[int]) -> int | None:
    """The place of a line's head among the places of its deliveries: the earliest."""
    return min(lines, default=None)


def queue_entry(delivery: Delivery, line: int | None, head: int | None) -> datetime | None:
    """When the queue hands the delivery out (``projections.queue_at``), except that a delivery
    in a line it does not head is parked (None) until it becomes the head."""
    if line is not None and line != head:
        return None
    return queue_at(delivery)
