"""Prometheus metrics: one registry per runtime (never the process-wide default, so that tests
and several applications in one process do not collide), fed by the worker's observer and by the
API's response hook, and completed at every scrape by one cheap query of the queue.

Labels are bounded: outcomes, error classes, HTTP methods, route templates (``/webhooks/{webhook_id}``,
never a raw path) and status codes. Nothing is labelled by webhook, account or event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ...core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryCancelled,
    DeliveryFailed,
    DeliveryHeld,
    DomainEvent,
)
from ...core.views import QueueStats

__all__ = ["CONTENT_TYPE", "Metrics", "error_class"]

#: The exposition format's media type, without the charset that Litestar adds to any text/ type.
CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "".join(
    f";{part}" for part in CONTENT_TYPE_LATEST.split(";")[1:] if "charset" not in part
)

#: Attempt latencies, in seconds: from a fast local receiver to the 15 s default timeout and past it.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)


def error_class(event: AttemptFailed) -> str:
    """A failed attempt's class: the transport's error kind (``connect_timeout``,
    ``connection_refused``, ``blocked_target``…) when there was no answer, else ``http_4xx``,
    ``http_5xx`` or ``http_other`` (a redirect, which is not followed, or an odd status)."""
    if event.status_code is None:
        return str(event.error or "error")
    family = event.status_code // 100
    return f"http_{family}xx" if family in (4, 5) else "http_other"


class Metrics:
    """The service's metric families, in their own ``registry``."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.attempts = Counter(
            "webhooks_attempts",
            "Delivery attempts recorded, by outcome (succeeded, failed) and error class.",
            ["outcome", "error_class"],
            registry=registry,
        )
        self.deliveries = Counter(
            "webhooks_deliveries",
            "Deliveries that reached an outcome: succeeded, failed (retries exhausted), held "
            "(endpoint disabled) or cancelled (endpoint deleted).",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "webhooks_attempt_duration_seconds",
            "Time from sending an attempt to its outcome, by outcome.",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.pending = Gauge(
            "webhooks_queue_pending",
            "Deliveries waiting for an attempt, leased ones included.",
            registry=registry,
        )
        self.due = Gauge("webhooks_queue_due", "Pending deliveries due now, not leased.", registry=registry)
        self.oldest_due_age = Gauge(
            "webhooks_queue_oldest_due_age_seconds",
            "How long the oldest due delivery has waited past its due time (0 when none is due).",
            registry=registry,
        )
        self.held = Gauge(
            "webhooks_deliveries_held",
            "Deliveries held until their endpoint is enabled again.",
            registry=registry,
        )
        self.disabled = Gauge("webhooks_endpoints_disabled", "Endpoints disabled.", registry=registry)
        self.database_up = Gauge(
            "webhooks_database_up", "1 if the queue could be read at this scrape, else 0.", registry=registry
        )
        self.requests = Counter(
            "webhooks_http_requests",
            "API responses, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        #: ``requests``' labelled children, by their labels: ``labels()`` checks and locks on every
        #: call, a few µs of each API request.
        self._request_counters: dict[tuple[str, str, int], Counter] = {}
        self._loop_age: Gauge | None = None  # registered once a dispatcher runs here

    def recorded(self, events: Sequence[DomainEvent]) -> None:
        """Count the outcomes among one delivery's recorded ``events``."""
        for event in events:
            if isinstance(event, AttemptSucceeded):
                self.attempts.labels("succeeded", "").inc()
                self.latency.labels("succeeded").observe(event.elapsed_ms / 1000)
                self.deliveries.labels("succeeded").inc()
            elif isinstance(event, AttemptFailed):
                self.attempts.labels("failed", error_class(event)).inc()
                self.latency.labels("failed").observe(event.elapsed_ms / 1000)
            elif isinstance(event, DeliveryFailed):
                self.deliveries.labels("failed").inc()
            elif isinstance(event, DeliveryHeld):
                self.deliveries.labels("held").inc()
            elif isinstance(event, DeliveryCancelled):
                self.deliveries.labels("cancelled").inc()

    def request(self, method: str, route: str, status: int) -> None:
        key = (method, route, status)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.requests.labels(method, route, str(status))
        counter.inc()

    def queue(self, stats: QueueStats | None, now: datetime) -> None:
        """The gauges read at a scrape; None: the database did not answer (they keep their values)."""
        self.database_up.set(0 if stats is None else 1)
        if stats is None:
            return
        self.pending.set(stats.pending)
        self.due.set(stats.due)
        oldest = stats.oldest_due_at
        self.oldest_due_age.set(max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)
        self.held.set(stats.held)
        self.disabled.set(stats.disabled_endpoints)

    def worker_loop_age(self, seconds: float) -> None:
        if self._loop_age is None:
            self._loop_age = Gauge(
                "webhooks_worker_loop_age_seconds",
                "Seconds since this process's dispatcher last went round its loop (absent without one).",
                registry=self.registry,
            )
        self._loop_age.set(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)
