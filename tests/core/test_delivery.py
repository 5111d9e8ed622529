"""The delivery state machine, as given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attribution_webhooks.core import delivery as dlv
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.errors import InvalidTransition
from attribution_webhooks.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryCancelled,
    DeliveryEvent,
    DeliveryFailed,
    DeliveryHeld,
    DeliveryReleased,
    DeliveryScheduled,
    RedeliveryRequested,
    RetryScheduled,
)
from attribution_webhooks.core.outcomes import ErrorKind, HttpResponse, TransportFailure
from attribution_webhooks.core.retry import RetryPolicy

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
POLICY = RetryPolicy()
SCHEDULED = DeliveryScheduled("dlv_1", "acct_1", "wh_1", "evt_1", "deal.attributed", T0)
OK = HttpResponse(200, timedelta(milliseconds=40), "Received")
DOWN = TransportFailure(ErrorKind.CONNECTION_REFUSED, timedelta(milliseconds=3), "refused")


def when(given: list[DeliveryEvent], command: dlv.DeliveryCommand) -> list[DeliveryEvent]:
    return dlv.decide(command, dlv.fold(given), POLICY)


def failed(attempts: int, at: datetime) -> list[DeliveryEvent]:
    """The events of ``attempts`` failed attempts, all at ``at``."""
    history: list[DeliveryEvent] = [SCHEDULED]
    for number in range(1, attempts + 1):
        history += when(history, dlv.RecordOutcome(number, at, DOWN, at))
    return history[1:]


def test_a_success_ends_the_delivery() -> None:
    """One 2xx answer: succeeded, with status, latency and body in the log event."""
    events = when([SCHEDULED], dlv.RecordOutcome(1, T0, OK, T0 + timedelta(milliseconds=40)))
    assert events == [AttemptSucceeded("dlv_1", "wh_1", 1, T0, 40.0, 200, "Received")]
    assert dlv.fold([SCHEDULED, *events]).status is DeliveryStatus.SUCCEEDED


def test_a_failure_schedules_the_next_attempt_by_the_policy() -> None:
    """A refused connection is logged with its error class; attempt 2 is due a minute later."""
    events = when([SCHEDULED], dlv.RecordOutcome(1, T0, DOWN, T0))
    assert events == [
        AttemptFailed("dlv_1", "wh_1", 1, T0, 3.0, None, ErrorKind.CONNECTION_REFUSED, "refused", ""),
        RetryScheduled("dlv_1", 2, T0 + timedelta(minutes=1), T0),
    ]
    state = dlv.fold([SCHEDULED, *events])
    assert (state.status, state.attempts, state.due_at) == (
        DeliveryStatus.RETRYING,
        1,
        T0 + timedelta(minutes=1),
    )


def test_the_fifth_failure_fails_the_delivery() -> None:
    """After five failed attempts nothing more is scheduled."""
    history = failed(5, T0)
    assert isinstance(history[-1], DeliveryFailed)
    assert history[-1].attempts == 5
    state = dlv.fold([SCHEDULED, *history])
    assert state.status is DeliveryStatus.FAILED
    with pytest.raises(InvalidTransition, match="takes no attempts"):
        dlv.decide(dlv.RecordOutcome(6, T0, OK, T0), state, POLICY)


def test_an_attempt_is_recorded_once() -> None:
    """A stale worker reporting an attempt number already recorded is refused."""
    history = [SCHEDULED, *failed(1, T0)]
    with pytest.raises(InvalidTransition, match="already recorded"):
        when(history, dlv.RecordOutcome(1, T0, OK, T0))


def test_redelivery_starts_a_fresh_sequence() -> None:
    """A failed (or succeeded) delivery sent again by hand starts over at attempt 1."""
    history = [SCHEDULED, *failed(5, T0)]
    later = T0 + timedelta(days=1)
    assert when(history, dlv.Redeliver(later)) == [RedeliveryRequested("dlv_1", later)]
    state = dlv.fold([*history, RedeliveryRequested("dlv_1", later)])
    assert (state.status, state.attempts, state.due_at) == (DeliveryStatus.SCHEDULED, 0, later)
    events = dlv.decide(dlv.RecordOutcome(1, later, OK, later), state, POLICY)
    assert isinstance(events[0], AttemptSucceeded)


def test_a_pending_delivery_cannot_be_redelivered() -> None:
    """It is going to be attempted anyway: say so."""
    with pytest.raises(InvalidTransition, match="only a succeeded or failed"):
        when([SCHEDULED], dlv.Redeliver(T0))


def test_held_deliveries_wait_and_resume_their_sequence() -> None:
    """Held while the endpoint is disabled; released, it continues with the next attempt."""
    history = [SCHEDULED, *failed(2, T0)]
    held_at = T0 + timedelta(minutes=2)
    assert when(history, dlv.Hold(held_at)) == [DeliveryHeld("dlv_1", held_at)]
    history.append(DeliveryHeld("dlv_1", held_at))
    assert dlv.fold(history).due_at is None
    released = T0 + timedelta(hours=5)
    assert when(history, dlv.Release(released)) == [DeliveryReleased("dlv_1", released)]
    state = dlv.fold([*history, DeliveryReleased("dlv_1", released)])
    assert (state.status, state.attempts, state.due_at) == (DeliveryStatus.RETRYING, 2, released)


def test_scheduled_held_for_a_disabled_endpoint() -> None:
    """Published while the endpoint is disabled: held from the start, not due."""
    held = DeliveryScheduled("dlv_1", "acct_1", "wh_1", "evt_1", "deal.attributed", T0, held=True)
    state = dlv.fold([held])
    assert (state.status, state.due_at) == (DeliveryStatus.HELD, None)


def test_an_attempt_in_flight_when_cancelled_is_still_recorded() -> None:
    """The request happened: its outcome is logged, and a success marks the delivery succeeded."""
    cancelled = DeliveryCancelled("dlv_1", "endpoint deleted", T0)
    events = when([SCHEDULED, cancelled], dlv.RecordOutcome(1, T0, OK, T0))
    assert [type(e) for e in events] == [AttemptSucceeded]
    events = when([SCHEDULED, cancelled], dlv.RecordOutcome(1, T0, DOWN, T0))
    assert [type(e) for e in events] == [AttemptFailed]  # but no retry
    assert dlv.fold([SCHEDULED, cancelled, *events]).status is DeliveryStatus.CANCELLED


def test_cancel_is_a_no_op_on_finished_deliveries() -> None:
    """Deleting an endpoint does not rewrite history."""
    done = [SCHEDULED, *when([SCHEDULED], dlv.RecordOutcome(1, T0, OK, T0))]
    assert when(done, dlv.Cancel("endpoint deleted", T0)) == []
    assert when([SCHEDULED], dlv.Cancel("endpoint deleted", T0)) == [
        DeliveryCancelled("dlv_1", "endpoint deleted", T0)
    ]


def test_redirects_are_failures() -> None:
    """A 301 is logged as a failed attempt with its status and retried."""
    moved = HttpResponse(301, timedelta(milliseconds=5), "Moved")
    events = when([SCHEDULED], dlv.RecordOutcome(1, T0, moved, T0))
    assert isinstance(events[0], AttemptFailed)
    assert (events[0].status_code, events[0].detail) == (301, "HTTP 301")
    assert isinstance(events[1], RetryScheduled)
