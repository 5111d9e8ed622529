"""OpenTelemetry traces, an optional extra: ``pip install 'attribution-webhooks[otel]'``.

Only the composition root imports this module, and only when tracing is enabled
(``--tracing on``): without it, nothing imports ``opentelemetry`` and an attempt costs one
``is None`` test in the dispatcher.

One trace per published event. Its id, and the id of a root span context that is never exported,
are derived from the account and the event id (SHA-256), so a publish and each attempt of the
event, in any process and at any time, land in the same trace without storing a context with
the event: the publish span (``webhook.publish``, in the API process) and each attempt span
(``webhook.attempt``, in the worker) are children of that root and link to it. The attempt's
W3C ``traceparent`` header carries its own span, so a receiver that traces continues the trace.
``trace_id_of(account_id, event_id)`` gives an event's trace id for a lookup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ... import __version__
from ...core.delivery import Delivery
from ...core.outcomes import HttpResponse, Outcome, is_success

__all__ = ["OtelTracer", "event_root", "trace_id_of"]

_PROPAGATOR = TraceContextTextMapPropagator()
_SCOPE = "attribution_webhooks"


def trace_id_of(account_id: str, event_id: str) -> int:
    """The trace id of an event's publish and attempts (128 bits, never zero)."""
    digest = hashlib.sha256(f"{account_id}\0{event_id}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1


def event_root(account_id: str, event_id: str) -> SpanContext:
    """The event's root span context: remote, sampled, derived from the ids alone."""
    digest = hashlib.sha256(f"{account_id}\0{event_id}".encode()).digest()
    return SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


class OtelTracer:
    """Implements ``app.worker.tracer.AttemptTracer``, and makes the publish spans."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        #: The process's tracer provider by default: the operator's SDK configuration.
        self.tracer: Tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=provider)

    def published(self, account_id: str, event_id: str, event_type: str, delivery_ids: Sequence[str]) -> None:
        """A span for publishing an event (already stored), in the event's trace."""
        root = event_root(account_id, event_id)
        span = self.tracer.start_span(
            "webhook.publish",
            context=trace.set_span_in_context(trace.NonRecordingSpan(root), Context()),
            kind=SpanKind.PRODUCER,
            attributes={
                "webhook.account_id": account_id,
                "webhook.event_id": event_id,
                "webhook.event_type": event_type,
                "webhook.deliveries": len(delivery_ids),
            },
        )
        span.end()

    def attempt_started(
        self, delivery: Delivery, attempt: int, started_at: datetime
    ) -> tuple[object, Sequence[tuple[str, str]]]:
        root = event_root(delivery.account_id, delivery.event_id)
        span = self.tracer.start_span(
            "webhook.attempt",
            context=trace.set_span_in_context(trace.NonRecordingSpan(root), Context()),
            kind=SpanKind.CLIENT,
            links=[Link(root, {"webhook.link": "publish"})],
            start_time=_nanoseconds(started_at),
            attributes={
                "webhook.delivery_id": delivery.delivery_id,
                "webhook.event_id": delivery.event_id,
                "webhook.event_type": delivery.event_type,
                "webhook.endpoint_id": delivery.endpoint_id,
                "webhook.attempt": attempt,
            },
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span, Context()))
        return span, tuple(carrier.items())

    def attempt_finished(self, handle: object, outcome: Outcome) -> None:
        span = handle
        assert isinstance(span, trace.Span)
        latency_ms = outcome.elapsed.total_seconds() * 1000
        span.set_attribute("webhook.latency_ms", latency_ms)
        if isinstance(outcome, HttpResponse):
            span.set_attribute("http.response.status_code", outcome.status)
            if is_success(outcome):
                span.set_status(Status(StatusCode.OK))
            else:
                family = outcome.status // 100  # the error classes of the metrics and the logs
                span.set_attribute("error.type", f"http_{family}xx" if family in (4, 5) else "http_other")
                span.set_status(Status(StatusCode.ERROR, f"HTTP {outcome.status}"))
        else:
            span.set_attribute("error.type", outcome.kind.value)
            span.set_status(Status(StatusCode.ERROR, outcome.kind.value))
        span.end()


def _nanoseconds(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)
