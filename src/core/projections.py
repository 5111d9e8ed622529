"""The read models as pure functions: given a row as it is and one recorded event, the row after it.

This is the one home of every projection rule: how an endpoint's health (``failing_since``)
moves, what a line of the attempt log holds, how a delivery row summarises its latest attempt,
and when a delivery is in the queue. Every store (the in-memory reference, SQLite, PostgreSQL)
calls these functions inside its append and only decides how to hold and write the values; none
computes a rule of its own. A row is a snapshot of the fold of its stream (ADR 0002): folding
``row_after`` over a stream from ``None`` gives the row the store holds, and the simulation's
snapshot audit checks that it does, on every store.
"""

from __future__ import annotations

from datetime import datetime

from . import delivery as dlv
from . import endpoint as ep
from .delivery import Delivery
from .events import (
    AttemptAbandoned,
    AttemptFailed,
    AttemptSucceeded,
    DeliveryEvent,
    DeliveryScheduled,
    EndpointEnabled,
    EndpointEvent,
    EndpointRegistered,
    EventPublished,
    time_of,
)
from .outcomes import ErrorKind
from .views import AttemptView, DeliveryView, EndpointView, EventView

__all__ = [
    "attempt_entry",
    "delivery_row",
    "next_failing_since",
    "next_failures",
    "endpoint_row",
    "event_row",
    "queue_at",
]

_NEW_ENDPOINT = EndpointView(ep.initial_state(), 0)
_NEW_DELIVERY = dlv.initial_state()
# Class tuples, not unions: ``isinstance`` with ``A | B`` builds the union at each call (four times slower).
_FRESH_START = (AttemptSucceeded, EndpointRegistered, EndpointEnabled)
_ATTEMPTED = (AttemptSucceeded, AttemptFailed)


def next_failing_since(
    failing_since: datetime | None, event: EndpointEvent | AttemptSucceeded | AttemptFailed
) -> datetime | None:
    """When the endpoint's current run of failures began, after ``event``.

    The first failed attempt after a success starts the run; a success ends it. Registering and
    enabling give the endpoint a fresh start: failures before them no longer count towards
    disabling it (``endpoint.failing_too_long`` judges the run). Other endpoint events leave it.
    """
    if isinstance(event, AttemptFailed):
        return event.started_at if failing_since is None else failing_since
    if isinstance(event, _FRESH_START):
        return None
    return failing_since


def next_failures(failures: int, event: EndpointEvent | AttemptSucceeded | AttemptFailed) -> int:
    """How many attempts in a row have failed, after ``event``: the circuit breaker's count
    (ADR 0015). It moves as ``failing_since`` does: a failure adds one; a success, registering
    and enabling start again from zero."""
    if isinstance(event, AttemptFailed):
        return failures + 1
    if isinstance(event, _FRESH_START):
        return 0
    return failures


def endpoint_row(row: EndpointView | None, version: int, event: EndpointEvent) -> EndpointView:
    """The endpoints row after ``event``, version ``version`` of its stream (``row`` is None, or
    ignored, when the event registers the endpoint)."""
    previous = _NEW_ENDPOINT if row is None or isinstance(event, EndpointRegistered) else row
    return EndpointView(
        ep.evolve(previous.endpoint, event),
        version,
        next_failing_since(previous.failing_since, event),
        next_failures(previous.failures, event),
    )


def event_row(event: EventPublished) -> EventView:
    """The published-events row of ``event``."""
    return EventView(
        event.event_id,
        event.account_id,
        event.event_type,
        event.body,
        event.occurred_at,
        event.published_at,
        event.test,
    )


def tells_health(line: AttemptView) -> bool:
    """Whether an attempt-log line counts in an endpoint's success rate: an abandoned attempt's
    outcome is unknown (our worker was lost, not the endpoint), so it counts neither way."""
    return line.error is not ErrorKind.WORKER_LOST


def attempt_entry(event: AttemptSucceeded | AttemptFailed | AttemptAbandoned) -> AttemptView:
    """The line an attempt adds to its delivery's attempt log. An abandoned attempt (its outcome
    unknown: the worker was lost) has no status, no answer and no time."""
    if isinstance(event, AttemptAbandoned):
        return AttemptView(
            event.attempt, event.noted_at, 0.0, False, None, ErrorKind.WORKER_LOST, event.reason, ""
        )
    if isinstance(event, AttemptSucceeded):
        return AttemptView(
            event.attempt,
            event.started_at,
            event.elapsed_ms,
            True,
            event.status_code,
            None,
            "",
            event.response_body,
        )
    return AttemptView(
        event.attempt,
        event.started_at,
        event.elapsed_ms,
        False,
        event.status_code,
        event.error,
        event.detail,
        event.response_body,
    )


def delivery_row(row: DeliveryView | None, version: int, event: DeliveryEvent) -> DeliveryView:
    """The deliveries row after ``event``, version ``version`` of its stream.

    ``updated_at`` is the event's time; scheduling starts a fresh row (created then, no attempt
    yet); an attempt's outcome becomes the row's summary of its latest attempt (its start, its
    status code, its error), which the other events keep.
    """
    at = time_of(event)
    if isinstance(event, DeliveryScheduled):
        # Built directly: this runs for every delivery of every published event.
        return DeliveryView(dlv.evolve(_NEW_DELIVERY, event), version, at, at)
    if row is None:  # only a log that lost a stream's first event: fold from nothing
        row = DeliveryView(_NEW_DELIVERY, 0, at, at)
    state = dlv.evolve(row.delivery, event)
    if isinstance(event, _ATTEMPTED):
        error = event.error if isinstance(event, AttemptFailed) else None
        return DeliveryView(state, version, row.created_at, at, event.started_at, event.status_code, error)
    return DeliveryView(
        state, version, row.created_at, at, row.last_attempt_at, row.last_status_code, row.last_error
    )


def queue_at(delivery: Delivery) -> datetime | None:
    """When the queue hands the delivery out: its due time while it waits for an attempt;
    never once it is held or finished."""
    return delivery.due_at if delivery.status.pending else None
