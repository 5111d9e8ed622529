"""Saying that history is gone because the retention policy removed it (ADR 0018).

A published event's id may be the client's own, so the store keeps a small tombstone per purged
event (for the retention age again, then it goes too). Deliveries have no tombstone: their ids
are ours, ULIDs whose first 48 bits are the creation time, so a delivery id that is not found
and was made before the horizon names history that retention removes. (An id that never existed
but looks that old gets the same answer, whichever account asks: it tells nothing.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from attrs import frozen

from ...core.errors import NotFound, Purged
from ...core.ports import Clock, History
from .queries import is_id

__all__ = ["PurgedHistory", "format_age"]


def format_age(age: timedelta) -> str:
    """``30 days``, ``1 day``, ``12 hours``, ``90 minutes``, ``45 seconds``."""
    seconds = age.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} seconds"


def _at(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@frozen
class PurgedHistory:
    """Explains a missing event or delivery when retention removed it; None otherwise."""

    store: History
    clock: Clock
    age: timedelta | None  # None: nothing is ever removed
    id_time: Callable[[str], datetime | None]  # when one of our ids was made

    async def event(self, account_id: str, event_id: str) -> Purged | None:
        if self.age is None or not is_id(event_id):  # an id that cannot exist has no tombstone
            return None
        tombstone = await self.store.purged_event(account_id, event_id)
        if tombstone is None:
            return None
        published_at, purged_at = tombstone
        return Purged(
            "event",
            event_id,
            f"event {event_id!r} (published {_at(published_at)}) was removed on {_at(purged_at)} by the "
            f"retention policy: finished events and their deliveries are kept for {format_age(self.age)}",
        )

    async def delivery(self, delivery_id: str) -> Purged | None:
        if self.age is None:
            return None
        made = self.id_time(delivery_id)
        if made is None or made >= self.clock.now() - self.age:
            return None
        return Purged(
            "delivery",
            delivery_id,
            f"delivery {delivery_id!r} was created {_at(made)}, more than {format_age(self.age)} ago: "
            "finished deliveries older than that are removed by the retention policy",
        )

    async def delivery_error(self, delivery_id: str) -> NotFound:
        """The error for a delivery that is not found: Purged when retention removed it."""
        gone = await self.delivery(delivery_id)
        return gone if gone is not None else NotFound("delivery", delivery_id)
