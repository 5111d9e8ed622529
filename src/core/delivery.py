"""The delivery state machine: one published event owed to one endpoint.

    scheduled ──attempt──▶ succeeded
        │  ▲                  │
        │  └──retry due──┐    └─redeliver─▶ scheduled (a fresh attempt sequence)
        ▼                │
     retrying ───────────┘──last attempt fails──▶ failed ─redeliver─▶ scheduled
    scheduled / retrying ──endpoint disabled──▶ held ──enabled──▶ scheduled / retrying
    anything not finished ──endpoint deleted──▶ cancelled

"Attempting" is not a recorded fact: it is the worker's lease on a due delivery (see ADR 0003),
and the lease carries the attempt's number. An attempt becomes a fact when its outcome is
recorded. A crash in between loses the outcome, not the number: the next lease takes the next
number, and the lost attempts are recorded as abandoned (outcome unknown) with its outcome (ADR
0014). An attempt that was in flight when its delivery was held or cancelled is still recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from functools import reduce

from attrs import frozen

from .errors import InvalidTransition
from .events import (
    AttemptAbandoned,
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
from .outcomes import HttpResponse, Outcome, TransportFailure, is_success
from .retry import RetryPolicy, next_attempt_at

__all__ = [
    "WORKER_LOST",
    "WORKER_STOPPED",
    "Abandon",
    "Cancel",
    "Delivery",
    "DeliveryCommand",
    "DeliveryStatus",
    "Hold",
    "RecordOutcome",
    "Redeliver",
    "Release",
    "Schedule",
    "decide",
    "evolve",
    "fold",
    "initial_state",
]


class DeliveryStatus(StrEnum):
    NEW = "new"
    SCHEDULED = "scheduled"
    RETRYING = "retrying"
    HELD = "held"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def pending(self) -> bool:
        """Waiting for an attempt (the only states the queue hands out)."""
        return self in (DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING)


@frozen
class Delivery:
    """A delivery's state, folded from its events. ``attempts`` counts the current sequence."""

    status: DeliveryStatus = DeliveryStatus.NEW
    delivery_id: str = ""
    account_id: str = ""
    endpoint_id: str = ""
    event_id: str = ""
    event_type: str = ""
    test: bool = False
    attempts: int = 0
    due_at: datetime | None = None


# --- commands ----------------------------------------------------------------------------------


@frozen
class Schedule:
    delivery_id: str
    account_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    now: datetime
    held: bool = False
    test: bool = False
    #: The endpoint delivers in order (ADR 0016): the delivery joins its line, unless a test.
    ordered: bool = False


@frozen
class RecordOutcome:
    """Attempt number ``attempt`` started at ``started_at`` and ended with ``outcome`` at ``now``.

    ``jitter_sample`` is a number in [0, 1) drawn by the caller for the retry policy's jitter.
    """

    attempt: int
    started_at: datetime
    outcome: Outcome
    now: datetime
    jitter_sample: float = 0.5


@frozen
class Abandon:
    """Attempt number ``attempt`` was started and its outcome will never be known (``reason``)."""

    attempt: int
    reason: str
    now: datetime


#: Why an attempt is abandoned: its worker died (noticed by the next lease), or was stopped.
WORKER_LOST = "outcome unknown (worker lost)"
WORKER_STOPPED = "outcome unknown (worker stopped while it ran)"


@frozen
class Hold:
    now: datetime


@frozen
class Release:
    now: datetime


@frozen
class Redeliver:
    now: datetime
    #: The endpoint delivers in order now: the delivery joins the back of its line (ADR 0016).
    ordered: bool = False


@frozen
class Cancel:
    reason: str
    now: datetime


DeliveryCommand = Schedule | RecordOutcome | Abandon | Hold | Release | Redeliver | Cancel


# --- decide / evolve ------------------------------------------------------------------------------


def initial_state() -> Delivery:
    return Delivery()


def _elapsed_ms(elapsed: timedelta) -> float:
    return round(elapsed.total_seconds() * 1000.0, 3)


def decide(command: DeliveryCommand, state: Delivery, policy: RetryPolicy) -> list[DeliveryEvent]:
    """The events that ``command`` causes in ``state``; raises InvalidTransition if not allowed."""
    match command:
        case Schedule():
            if state.status is not DeliveryStatus.NEW:
                raise InvalidTransition(f"delivery {command.delivery_id} is already scheduled")
            return [
                DeliveryScheduled(
                    delivery_id=command.delivery_id,
                    account_id=command.account_id,
                    endpoint_id=command.endpoint_id,
                    event_id=command.event_id,
                    event_type=command.event_type,
                    scheduled_at=command.now,
                    held=command.held,
                    test=command.test,
                    # A test send diagnoses the endpoint: it neither waits in line nor blocks it.
                    ordered=command.ordered and not command.test,
                )
            ]
        case RecordOutcome():
            return _decide_outcome(command, state, policy)
        case Abandon():
            _check_attempt(command.attempt, state)
            return _abandoned(state, state.attempts + 1, command.attempt + 1, command.reason, command.now)
        case Hold():
            if state.status is DeliveryStatus.HELD:
                return []
            if not state.status.pending:
                raise InvalidTransition(f"a {state.status} delivery cannot be held")
            return [DeliveryHeld(state.delivery_id, command.now)]
        case Release():
            if state.status is not DeliveryStatus.HELD:
                raise InvalidTransition(f"only a held delivery can be released, this one is {state.status}")
            return [DeliveryReleased(state.delivery_id, command.now)]
        case Redeliver():
            if state.status not in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
                raise InvalidTransition(
                    f"the delivery is {state.status}; only a succeeded or failed delivery can be sent again"
                )
            return [RedeliveryRequested(state.delivery_id, command.now, command.ordered and not state.test)]
        case Cancel():
            if state.status in (DeliveryStatus.NEW, DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
                return []
            if state.status is DeliveryStatus.CANCELLED:
                return []
            return [DeliveryCancelled(state.delivery_id, command.reason, command.now)]
    raise TypeError(f"not a delivery command: {command!r}")


_STARTED_BEFORE_STOP = (DeliveryStatus.HELD, DeliveryStatus.CANCELLED)


def _check_attempt(attempt: int, state: Delivery) -> None:
    # An attempt already in flight when its delivery was held or cancelled still happened: its
    # outcome is recorded (a success means the receiver has it), but no retry is scheduled.
    if not state.status.pending and state.status not in _STARTED_BEFORE_STOP:
        raise InvalidTransition(f"a {state.status} delivery takes no attempts")
    if attempt <= state.attempts:
        raise InvalidTransition(
            f"attempt {attempt} does not follow attempt {state.attempts}: it was already recorded"
        )


def _abandoned(state: Delivery, first: int, stop: int, reason: str, now: datetime) -> list[DeliveryEvent]:
    return [
        AttemptAbandoned(state.delivery_id, state.endpoint_id, n, reason, now) for n in range(first, stop)
    ]


def _decide_outcome(command: RecordOutcome, state: Delivery, policy: RetryPolicy) -> list[DeliveryEvent]:
    _check_attempt(command.attempt, state)
    # Numbers skipped since the last recorded attempt were taken by leases whose worker died
    # mid-attempt: the receiver may have had them, so the log says so before this outcome.
    lost = _abandoned(state, state.attempts + 1, command.attempt, WORKER_LOST, command.started_at)
    return lost + _outcome_events(command, state, policy)


def _outcome_events(command: RecordOutcome, state: Delivery, policy: RetryPolicy) -> list[DeliveryEvent]:
    outcome = command.outcome
    elapsed_ms = _elapsed_ms(outcome.elapsed)
    if is_success(outcome):
        assert isinstance(outcome, HttpResponse)
        return [
            AttemptSucceeded(
                delivery_id=state.delivery_id,
                endpoint_id=state.endpoint_id,
                attempt=command.attempt,
                started_at=command.started_at,
                elapsed_ms=elapsed_ms,
                status_code=outcome.status,
                response_body=outcome.body,
            )
        ]
    failed = AttemptFailed(
        delivery_id=state.delivery_id,
        endpoint_id=state.endpoint_id,
        attempt=command.attempt,
        started_at=command.started_at,
        elapsed_ms=elapsed_ms,
        status_code=outcome.status if isinstance(outcome, HttpResponse) else None,
        error=outcome.kind if isinstance(outcome, TransportFailure) else None,
        detail=outcome.detail if isinstance(outcome, TransportFailure) else f"HTTP {outcome.status}",
        response_body=outcome.body if isinstance(outcome, HttpResponse) else "",
    )
    if not state.status.pending:
        return [failed]
    due_at = next_attempt_at(policy, command.attempt, outcome, command.now, command.jitter_sample)
    if due_at is None:
        return [failed, DeliveryFailed(state.delivery_id, state.endpoint_id, command.attempt, command.now)]
    return [failed, RetryScheduled(state.delivery_id, command.attempt + 1, due_at, command.now)]


def _moved(state: Delivery, status: DeliveryStatus, attempts: int, due_at: datetime | None) -> Delivery:
    # attrs.evolve inspects the class on every call; this is the hot path of every store.
    return Delivery(
        status,
        state.delivery_id,
        state.account_id,
        state.endpoint_id,
        state.event_id,
        state.event_type,
        state.test,
        attempts,
        due_at,
    )


def evolve(state: Delivery, event: DeliveryEvent) -> Delivery:
    """The state after ``event``."""
    match event:
        case DeliveryScheduled():
            return Delivery(
                status=DeliveryStatus.HELD if event.held else DeliveryStatus.SCHEDULED,
                delivery_id=event.delivery_id,
                account_id=event.account_id,
                endpoint_id=event.endpoint_id,
                event_id=event.event_id,
                event_type=event.event_type,
                test=event.test,
                due_at=None if event.held else event.scheduled_at,
            )
        case DeliveryHeld():
            return _moved(state, DeliveryStatus.HELD, state.attempts, None)
        case DeliveryReleased():
            status = DeliveryStatus.SCHEDULED if state.attempts == 0 else DeliveryStatus.RETRYING
            return _moved(state, status, state.attempts, event.released_at)
        case AttemptSucceeded():
            return _moved(state, DeliveryStatus.SUCCEEDED, event.attempt, None)
        case AttemptFailed() | AttemptAbandoned():
            return _moved(state, state.status, event.attempt, state.due_at)
        case RetryScheduled():
            return _moved(state, DeliveryStatus.RETRYING, state.attempts, event.due_at)
        case DeliveryFailed():
            return _moved(state, DeliveryStatus.FAILED, state.attempts, None)
        case RedeliveryRequested():
            return _moved(state, DeliveryStatus.SCHEDULED, 0, event.requested_at)
        case DeliveryCancelled():
            return _moved(state, DeliveryStatus.CANCELLED, state.attempts, None)
    raise TypeError(f"not a delivery event: {event!r}")


def fold(events: Iterable[DeliveryEvent], state: Delivery | None = None) -> Delivery:
    """Replay ``events`` onto ``state`` (the initial state by default)."""
    return reduce(evolve, events, state if state is not None else initial_state())
