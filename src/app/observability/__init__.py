"""Observability: Prometheus metrics, logs (text or JSON lines) and the worker's heartbeat.

``Observability`` is the worker's observer (``app.worker.DeliveryObserver``) that the
composition root hands to each dispatcher; the API reads it for ``/metrics`` and ``/readyz``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ...core.delivery import Delivery
from ...core.events import DomainEvent
from ...core.ports import DeliveryQueue
from .logs import ATTEMPTS_LOGGER, JsonFormatter, LogFormat, configure_logging, log_attempts
from .metrics import CONTENT_TYPE, Metrics

__all__ = [
    "ATTEMPTS_LOGGER",
    "CONTENT_TYPE",
    "JsonFormatter",
    "LogFormat",
    "Metrics",
    "Observability",
    "configure_logging",
]

log = logging.getLogger(__name__)

#: The dispatcher's loop goes round at least every poll interval (it never sleeps longer); it is
#: judged stuck when it has not for this many intervals, and never in less than the floor below
#: (a slow database round trip or a busy machine must not flap readiness).
STUCK_AFTER_POLLS = 10
_STUCK_FLOOR = timedelta(seconds=10)
_SCRAPE_TIMEOUT = 5.0  # seconds: a scrape answers without the queue's gauges rather than hang


class Observability:
    """One runtime's metrics and worker heartbeat; the observer of its dispatchers."""

    def __init__(self, poll_interval: timedelta = timedelta(seconds=1)) -> None:
        self.metrics = Metrics()
        self.stuck_after = max(STUCK_AFTER_POLLS * poll_interval, _STUCK_FLOOR)
        #: Whether a dispatcher was started in this process (``serve``): readiness then needs it.
        self.worker_started = False
        self.last_tick: datetime | None = None

    # --- DeliveryObserver --------------------------------------------------------------------

    def recorded(self, delivery: Delivery, events: Sequence[DomainEvent]) -> None:
        self.metrics.recorded(events)
        log_attempts(delivery, events)

    def loop_ticked(self, at: datetime) -> None:
        self.last_tick = at

    # --- read by the API ---------------------------------------------------------------------

    def worker_problem(self, now: datetime) -> str | None:
        """Why the worker of this process is not ready; None if it is, or if none runs here."""
        if not self.worker_started:
            return None
        if self.last_tick is None:
            return "the delivery worker has not started its loop yet"
        age = now - self.last_tick
        if age > self.stuck_after:
            return (
                f"the delivery worker's loop last went round {age.total_seconds():.0f} s ago "
                f"(more than {self.stuck_after.total_seconds():g} s)"
            )
        return None

    async def scrape(self, queue: DeliveryQueue) -> bytes:
        """The metrics in Prometheus's text format, the queue's gauges read now."""
        now = datetime.now(UTC)
        try:
            stats = await asyncio.wait_for(queue.queue_stats(now), timeout=_SCRAPE_TIMEOUT)
        except Exception as error:
            log.warning("metrics: the queue could not be read: %s", type(error).__name__)
            stats = None
        self.metrics.queue(stats, now)
        if self.last_tick is not None:
            self.metrics.worker_loop_age(max((now - self.last_tick).total_seconds(), 0.0))
        return self.metrics.exposition()
