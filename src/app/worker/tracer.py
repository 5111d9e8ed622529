"""The worker's opt-in tracing hook: a span around each attempt (ADR 0012's addendum).

The dispatcher holds ``tracer: AttemptTracer | None``, None by default: then an attempt costs one
``is None`` test and nothing is imported. ``app.observability.tracing`` implements it with
OpenTelemetry, built by the composition root only when tracing is enabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ...core.delivery import Delivery
from ...core.outcomes import Outcome

__all__ = ["AttemptTracer"]


class AttemptTracer(Protocol):
    def attempt_started(
        self, delivery: Delivery, attempt: int, started_at: datetime
    ) -> tuple[object, Sequence[tuple[str, str]]]:
        """An attempt is about to be sent: a handle for ``attempt_finished`` and the headers to
        add to the request (W3C ``traceparent``). Must be quick and must not raise."""
        ...

    def attempt_finished(self, handle: object, outcome: Outcome) -> None:
        """The attempt's outcome is known (the handle is ``attempt_started``'s). Must not raise."""
        ...
