"""Retention: which finished history may be removed, as pure rules every store calls (ADR 0018).

Only finished history goes. A published event is purgeable when it was published before the
horizon (``now - age``) and every one of its deliveries is final (succeeded, failed or
cancelled) and last changed before the horizon too: a delivery that is pending, leased (in
flight), held, or was redelivered recently keeps its event, its own stream and its attempts. An
event goes together with all its deliveries or not at all, so the log never holds a delivery
whose event is gone. A deleted endpoint's stream goes once it was deleted before the horizon and
no delivery to it is left (its secrets died with the deletion, ADR 0010).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from attrs import frozen

from .delivery import DeliveryStatus
from .endpoint import EndpointStatus

__all__ = [
    "FINAL",
    "next_cursor",
    "PurgeReport",
    "RetentionPolicy",
    "delivery_purgeable",
    "endpoint_purgeable",
    "event_purgeable",
]

T = TypeVar("T")

#: The states a delivery never leaves by itself (only an explicit redelivery reopens them).
FINAL = frozenset({DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED})


@frozen
class RetentionPolicy:
    """How long finished history is kept, and how the purge paces itself.

    ``age`` None keeps everything. A purge removes at most ``batch`` events (with their
    deliveries) per transaction and waits ``pause`` between transactions, so the single writer
    of SQLite is never held for long; after a full pass it waits ``interval``.
    """

    age: timedelta | None = timedelta(days=30)
    #: Events looked at per transaction; a transaction also stops taking events once it has
    #: this many deliveries, so a fan-out to many endpoints cannot make it long.
    batch: int = 100
    pause: timedelta = timedelta(milliseconds=200)
    interval: timedelta = timedelta(minutes=10)

    def __attrs_post_init__(self) -> None:
        if self.age is not None and self.age <= timedelta(0):
            raise ValueError("the retention age must be more than zero (None keeps everything)")
        if self.batch < 1:
            raise ValueError("the retention batch must be at least 1")

    @property
    def enabled(self) -> bool:
        return self.age is not None

    def horizon(self, now: datetime) -> datetime | None:
        """History that ended before this time may go; None when nothing ever goes."""
        return None if self.age is None else now - self.age


@frozen
class PurgeReport:
    """What one purge transaction removed. ``cursor`` is where the next batch of the same pass
    starts (the last event looked at, purged or not); None when the pass reached the horizon."""

    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    endpoints: int = 0
    tombstones: int = 0
    cursor: tuple[datetime, str, str] | None = None


def delivery_purgeable(status: DeliveryStatus, updated_at: datetime, horizon: datetime) -> bool:
    """The delivery is finished and nothing happened to it since before the horizon."""
    return status in FINAL and updated_at < horizon


def event_purgeable(
    published_at: datetime, deliveries: Iterable[tuple[DeliveryStatus, datetime]], horizon: datetime
) -> bool:
    """The event was published before the horizon and every delivery of it, given as its
    ``(status, updated_at)``, is purgeable."""
    return published_at < horizon and all(delivery_purgeable(s, at, horizon) for s, at in deliveries)


def endpoint_purgeable(
    status: EndpointStatus, updated_at: datetime | None, deliveries_left: bool, horizon: datetime
) -> bool:
    """The endpoint was deleted (its last change) before the horizon and no delivery to it is left."""
    return (
        status is EndpointStatus.DELETED
        and updated_at is not None
        and updated_at < horizon
        and not deliveries_left
    )


def next_cursor(looked: Sequence[T], examined: int, limit: int) -> T | None:
    """Where the next batch of a pass starts, after ``examined`` of the ``looked`` events (up to
    ``limit`` were asked for): the last one examined, or None once the pass has seen every
    event before the horizon."""
    if examined < len(looked) or len(looked) == limit:
        return looked[examined - 1]
    return None
