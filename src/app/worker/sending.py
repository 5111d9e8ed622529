"""One attempt on the wire: sign the delivery's body for its endpoint, send it through the
transport, and turn whatever happens into an outcome. A transport that raises is a bug, not an
answer: it is logged and recorded as ``ErrorKind.OTHER`` so the delivery is never stranded."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from ...core.endpoint import Endpoint
from ...core.outcomes import ErrorKind, Outcome, TransportFailure
from ...core.ports import Clock, OutboundRequest, Signer, Transport
from ...core.signing import delivery_headers
from ...core.views import DueDelivery
from .settings import DispatchSettings
from .tracer import AttemptTracer

__all__ = ["send_attempt"]

log = logging.getLogger(__name__)


async def send_attempt(
    due: DueDelivery,
    endpoint: Endpoint,
    signer: Signer,
    transport: Transport,
    clock: Clock,
    settings: DispatchSettings,
    tracer: AttemptTracer | None,
) -> tuple[datetime, Outcome]:
    """Send attempt ``due.attempt`` of ``due`` to ``endpoint``; when it started, and its outcome."""
    delivery = due.delivery
    started_at = clock.now()
    body = due.body.encode("utf-8")
    headers = delivery_headers(
        signer,
        endpoint,
        body=body,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        delivery_id=delivery.delivery_id,
        attempt=due.attempt,
        now=started_at,
        user_agent=settings.user_agent,
        test=delivery.test,
    )
    span: object = None
    if tracer is not None:
        span, traced = tracer.attempt_started(delivery, due.attempt, started_at)
        headers = (*headers, *traced)
    request = OutboundRequest(endpoint.url, headers, body, settings.request_timeout)
    outcome: Outcome
    try:
        outcome = await transport.send(request)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # a transport bug must not strand the delivery
        log.exception("transport raised for %s", delivery.delivery_id)
        outcome = TransportFailure(
            ErrorKind.OTHER, clock.now() - started_at, f"{type(error).__name__}: {error}"
        )
    if tracer is not None:
        tracer.attempt_finished(span, outcome)
    return started_at, outcome
