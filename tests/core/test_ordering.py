"""Ordered delivery's pure rules (ADR 0016), as given / when / then: who joins a line, where,
when it leaves, and which delivery of a line the queue hands out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attribution_webhooks.core import delivery as dlv
from attribution_webhooks.core import endpoint as ep
from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryCancelled,
    DeliveryEvent,
    DeliveryFailed,
    DeliveryHeld,
    DeliveryReleased,
    DeliveryScheduled,
    EndpointRegistered,
    EndpointUpdated,
    RedeliveryRequested,
    RetryScheduled,
)
from attribution_webhooks.core.ordering import head_of, line_after, queue_entry
from attribution_webhooks.core.retry import RetryPolicy

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
SCHEDULED = DeliveryScheduled("dlv_1", "acct_1", "wh_1", "evt_1", "deal.attributed", T0, ordered=True)
FAILED = AttemptFailed("dlv_1", "wh_1", 1, T0, 5.0, 500, None, "HTTP 500", "")


def lines(events: list[tuple[int, DeliveryEvent]]) -> list[int | None]:
    """The delivery's place in line after each of ``events`` (recorded at their positions)."""
    state, line, found = dlv.initial_state(), None, []
    for position, event in events:
        state = dlv.evolve(state, event)
        line = line_after(line, position, event, state)
        found.append(line)
    return found


def test_scheduled_in_order_takes_its_log_position_as_its_place() -> None:
    """A delivery scheduled while its endpoint is ordered joins the line at its event's position."""
    assert lines([(7, SCHEDULED)]) == [7]


def test_a_delivery_keeps_its_place_while_retrying_and_held() -> None:
    """Failures, retries, a hold and a release leave the place alone."""
    events: list[tuple[int, DeliveryEvent]] = [
        (7, SCHEDULED),
        (9, FAILED),
        (10, RetryScheduled("dlv_1", 2, T0 + timedelta(minutes=1), T0)),
        (12, DeliveryHeld("dlv_1", T0)),
        (15, DeliveryReleased("dlv_1", T0)),
    ]
    assert lines(events) == [7, 7, 7, 7, 7]


@pytest.mark.parametrize(
    "end",
    [
        AttemptSucceeded("dlv_1", "wh_1", 1, T0, 5.0, 200, "OK"),
        DeliveryFailed("dlv_1", "wh_1", 5, T0),
        DeliveryCancelled("dlv_1", "endpoint deleted", T0),
    ],
)
def test_a_finished_delivery_leaves_the_line(end: DeliveryEvent) -> None:
    """Succeeded, failed for good or cancelled: out of the line, so the next one heads it."""
    assert lines([(7, SCHEDULED), (9, end)]) == [7, None]


def test_a_redelivery_goes_to_the_back_of_the_line() -> None:
    """Sent again by hand while the endpoint is ordered: a new place, its request's position."""
    success = AttemptSucceeded("dlv_1", "wh_1", 1, T0, 5.0, 200, "OK")
    events: list[tuple[int, DeliveryEvent]] = [
        (7, SCHEDULED),
        (9, success),
        (30, RedeliveryRequested("dlv_1", T0, ordered=True)),
    ]
    assert lines(events) == [7, None, 30]


def test_deliveries_scheduled_unordered_never_join() -> None:
    """A delivery scheduled or redelivered while the endpoint was not ordered is in no line."""
    scheduled = DeliveryScheduled("dlv_1", "acct_1", "wh_1", "evt_1", "deal.attributed", T0)
    assert lines([(7, scheduled), (9, FAILED)]) == [None, None]


def test_only_the_head_of_a_line_is_queued() -> None:
    """The head (smallest place) is queued at its due time; the others are parked."""
    state = dlv.evolve(dlv.initial_state(), SCHEDULED)
    head = head_of([12, 7, 30])
    assert head == 7
    assert queue_entry(state, 7, head) == T0
    assert queue_entry(state, 12, head) is None
    assert queue_entry(state, None, head) == T0  # not in a line: the plain queue rule
    assert head_of([]) is None


def test_a_test_send_never_joins_a_line() -> None:
    """Given an ordered endpoint, when a test event is scheduled, then it is not in line."""
    command = dlv.Schedule("dlv_1", "acct_1", "wh_1", "evt_1", "deal.attributed", T0, test=True, ordered=True)
    [scheduled] = dlv.decide(command, dlv.initial_state(), RetryPolicy())
    assert isinstance(scheduled, DeliveryScheduled)
    assert (scheduled.test, scheduled.ordered) == (True, False)


def test_a_redelivery_to_an_ordered_endpoint_is_ordered() -> None:
    """Given a succeeded delivery, when it is redelivered to an ordered endpoint, the event says so."""
    success = AttemptSucceeded("dlv_1", "wh_1", 1, T0, 5.0, 200, "OK")
    state = dlv.fold([SCHEDULED, success])
    assert dlv.decide(dlv.Redeliver(T0, ordered=True), state, RetryPolicy()) == [
        RedeliveryRequested("dlv_1", T0, ordered=True)
    ]


def test_the_setting_is_registered_and_updated() -> None:
    """ordered is part of registering and of a partial update; the same value again is no event."""
    register = ep.Register(
        "wh_1", "acct_1", "https://e.com/h", ["deal.attributed"], "s3cret-s3cret-XYZ", T0, ordered=True
    )
    [registered] = ep.decide(register, ep.initial_state(), ep.EndpointRules())
    assert isinstance(registered, EndpointRegistered)
    assert registered.ordered
    state = ep.fold([registered])
    assert state.ordered
    assert ep.decide(ep.Update(T0, ordered=True), state, ep.EndpointRules()) == []
    off = ep.decide(ep.Update(T0, ordered=False), state, ep.EndpointRules())
    assert off == [EndpointUpdated("wh_1", T0, ordered=False)]
    assert not ep.fold(off, state).ordered


def test_the_setting_must_be_a_boolean() -> None:
    """A non-boolean ``ordered`` is refused, naming the field."""
    register = ep.Register(
        "wh_1",
        "acct_1",
        "https://e.com/h",
        ["deal.attributed"],
        "s3cret-s3cret-XYZ",
        T0,
        ordered="yes",  # type: ignore[arg-type]  # a wrong type on purpose
    )
    with pytest.raises(ValidationError, match="ordered"):
        ep.decide(register, ep.initial_state(), ep.EndpointRules())
