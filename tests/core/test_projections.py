"""The read-model projections, as given (a row) / when (an event) / then (the row after it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from attribution_webhooks.core import delivery as dlv
from attribution_webhooks.core import endpoint as ep
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryHeld,
    DeliveryScheduled,
    DisableReason,
    EndpointDisabled,
    EndpointEnabled,
    EndpointRegistered,
    EndpointUpdated,
    EventPublished,
    RetryScheduled,
)
from attribution_webhooks.core.outcomes import ErrorKind
from attribution_webhooks.core.projections import (
    attempt_entry,
    delivery_row,
    endpoint_row,
    event_row,
    next_failing_since,
    queue_at,
)
from attribution_webhooks.core.views import AttemptView, DeliveryView, EndpointView, EventView

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
REGISTERED = EndpointRegistered(
    "wh_1", "acct_1", "https://example.com/hooks", ("deal.attributed",), "s3cret-s3cret-XYZ", "", False, T0
)
SCHEDULED = DeliveryScheduled("dlv_1", "acct_1", "wh_1", "evt_1", "deal.attributed", T0)


def failed(at: datetime, attempt: int = 1) -> AttemptFailed:
    return AttemptFailed("dlv_1", "wh_1", attempt, at, 30.0, None, ErrorKind.TIMEOUT, "timed out", "")


def succeeded(at: datetime, attempt: int = 1) -> AttemptSucceeded:
    return AttemptSucceeded("dlv_1", "wh_1", attempt, at, 12.5, 200, "OK")


# --- endpoint health ----------------------------------------------------------------------------


def test_the_first_failure_starts_the_run_of_failures() -> None:
    """Given a healthy endpoint, when an attempt fails, then it is failing since that attempt began."""
    assert next_failing_since(None, failed(T0)) == T0


def test_later_failures_keep_the_start_of_the_run() -> None:
    """Given an endpoint failing since t0, when another attempt fails, then it is still failing since t0."""
    assert next_failing_since(T0, failed(T0 + timedelta(hours=1))) == T0


def test_a_success_ends_the_run() -> None:
    """Given a failing endpoint, when an attempt succeeds, then it is healthy."""
    assert next_failing_since(T0, succeeded(T0 + timedelta(minutes=5))) is None


def test_enabling_and_registering_give_a_fresh_start() -> None:
    """Given a failing endpoint, when it is enabled (or registered), then earlier failures no longer count."""
    assert next_failing_since(T0, EndpointEnabled("wh_1", T0 + timedelta(hours=2))) is None
    assert next_failing_since(T0, REGISTERED) is None


def test_other_endpoint_events_leave_the_health_alone() -> None:
    """Given a failing endpoint, when it is disabled or updated, then it is failing since the same moment."""
    later = T0 + timedelta(hours=3)
    assert next_failing_since(T0, EndpointDisabled("wh_1", DisableReason.FAILING, later, T0)) == T0
    assert next_failing_since(T0, EndpointUpdated("wh_1", later, description="x")) == T0


# --- endpoint rows ------------------------------------------------------------------------------


def test_an_endpoint_row_is_the_folded_state_with_its_version_and_health() -> None:
    """Given no row, when the endpoint is registered then disabled, then the row is the fold at version 2."""
    disabled = EndpointDisabled("wh_1", DisableReason.MANUAL, T0 + timedelta(minutes=1))
    row = endpoint_row(endpoint_row(None, 1, REGISTERED), 2, disabled)
    assert row == EndpointView(ep.fold([REGISTERED, disabled]), 2, None)
    assert row.endpoint.status is ep.EndpointStatus.DISABLED


def test_enabling_an_endpoint_row_clears_its_health() -> None:
    """Given a disabled row failing since t0, when it is enabled, then the row is enabled and healthy."""
    disabled = EndpointDisabled("wh_1", DisableReason.FAILING, T0 + timedelta(days=3), T0)
    given = EndpointView(ep.fold([REGISTERED, disabled]), 2, T0)
    row = endpoint_row(given, 3, EndpointEnabled("wh_1", T0 + timedelta(days=4)))
    assert (row.endpoint.status, row.version, row.failing_since) == (ep.EndpointStatus.ENABLED, 3, None)


# --- deliveries, their attempt log and the queue ----------------------------------------------------


def test_scheduling_starts_a_fresh_delivery_row() -> None:
    """Given no row, when a delivery is scheduled, then it is created and updated then, with no attempt."""
    row = delivery_row(None, 1, SCHEDULED)
    assert row == DeliveryView(dlv.fold([SCHEDULED]), 1, T0, T0)


def test_an_attempt_becomes_the_rows_summary_and_a_line_of_the_log() -> None:
    """Given a scheduled row, when an attempt fails and a retry is scheduled, then the row sums up
    that attempt (start, status, error), is updated at the retry's scheduling, and the log has its line."""
    attempt = failed(T0 + timedelta(seconds=1))
    retry = RetryScheduled("dlv_1", 2, T0 + timedelta(minutes=1), T0 + timedelta(seconds=31))
    row = delivery_row(delivery_row(delivery_row(None, 1, SCHEDULED), 2, attempt), 3, retry)
    assert row == DeliveryView(
        dlv.fold([SCHEDULED, attempt, retry]),
        3,
        created_at=T0,
        updated_at=retry.scheduled_at,
        last_attempt_at=attempt.started_at,
        last_status_code=None,
        last_error=ErrorKind.TIMEOUT,
    )
    assert attempt_entry(attempt) == AttemptView(
        1, attempt.started_at, 30.0, False, None, ErrorKind.TIMEOUT, "timed out", ""
    )


def test_a_success_replaces_the_summary_of_an_earlier_failure() -> None:
    """Given a row whose last attempt failed, when the next succeeds, then the summary has no error."""
    given = DeliveryView(dlv.fold([SCHEDULED]), 2, T0, T0, T0, 503, ErrorKind.TIMEOUT)
    row = delivery_row(given, 3, succeeded(T0 + timedelta(minutes=1), attempt=1))
    assert (row.last_attempt_at, row.last_status_code, row.last_error) == (
        T0 + timedelta(minutes=1),
        200,
        None,
    )
    assert attempt_entry(succeeded(T0)) == AttemptView(1, T0, 12.5, True, 200, None, "", "OK")


def test_only_a_pending_delivery_is_in_the_queue() -> None:
    """Given a scheduled delivery, it is queued at its due time; once held, it is not queued."""
    scheduled = dlv.fold([SCHEDULED])
    assert scheduled.status is DeliveryStatus.SCHEDULED
    assert queue_at(scheduled) == T0
    assert queue_at(dlv.fold([SCHEDULED, DeliveryHeld("dlv_1", T0)])) is None


def test_a_published_event_row_holds_its_body_and_times() -> None:
    """When an event is published, then its row has its body, type and both times, as published."""
    event = EventPublished(
        "evt_1", "acct_1", "deal.attributed", '{"id":"evt_1"}', T0, T0 + timedelta(seconds=1)
    )
    assert event_row(event) == EventView(
        "evt_1", "acct_1", "deal.attributed", '{"id":"evt_1"}', T0, T0 + timedelta(seconds=1), False
    )
