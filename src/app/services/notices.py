"""Notices between the use cases and the dispatchers: new work is due, an endpoint changed.

The use cases announce through the ``Notices`` port (``core.ports``); a ``NoticeBoard`` passes
each notice on to whoever subscribed in this process (its dispatcher, and on PostgreSQL the
wake-up sender that tells the other processes). Notices are an optimisation: a lost one costs a
dispatcher at most its poll interval.
"""

from __future__ import annotations

from attrs import define, field

from ...core.ports import Notices

__all__ = ["NoticeBoard"]


@define
class NoticeBoard:
    """Fans every notice out to the subscribers of this process. Not thread-safe."""

    _subscribers: list[Notices] = field(factory=list, init=False)

    def subscribe(self, subscriber: Notices) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Notices) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def deliveries_due(self) -> None:
        for subscriber in list(self._subscribers):
            subscriber.deliveries_due()

    def endpoint_changed(self, endpoint_id: str) -> None:
        for subscriber in list(self._subscribers):
            subscriber.endpoint_changed(endpoint_id)
