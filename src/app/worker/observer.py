"""What the worker tells whoever watches it: each delivery's recorded events, and each turn of
its loop. The composition root passes in an observer (metrics and the per-attempt log line,
``app.observability``); the worker knows only this protocol, and by default tells no one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ...core.delivery import Delivery
from ...core.events import DomainEvent

__all__ = ["DeliveryObserver", "NoObserver"]


class DeliveryObserver(Protocol):
    def recorded(self, delivery: Delivery, events: Sequence[DomainEvent]) -> None:
        """``events`` of ``delivery`` (as it was claimed) have been written. Called on the event
        loop after each batch: it must be quick and must not raise."""
        ...

    def loop_ticked(self, at: datetime) -> None:
        """The dispatcher's loop went round once, at ``at``: the worker is alive."""
        ...


class NoObserver:
    """Nobody watches: a test's or an embedder's dispatcher."""

    def recorded(self, delivery: Delivery, events: Sequence[DomainEvent]) -> None:
        pass

    def loop_ticked(self, at: datetime) -> None:
        pass
