"""The retention rules (ADR 0018): what finished history may be removed, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.endpoint import EndpointStatus
from attribution_webhooks.core.retention import (
    FINAL,
    RetentionPolicy,
    delivery_purgeable,
    endpoint_purgeable,
    event_purgeable,
    next_cursor,
)

NOW = datetime(2024, 3, 1, tzinfo=UTC)
HORIZON = NOW - timedelta(days=30)
OLD = HORIZON - timedelta(seconds=1)


def test_the_horizon_is_now_minus_the_age_and_none_keeps_everything() -> None:
    """Given an age, history that ended before now - age may go; without one, nothing does."""
    assert RetentionPolicy().horizon(NOW) == HORIZON
    assert RetentionPolicy(age=None).horizon(NOW) is None
    assert not RetentionPolicy(age=None).enabled


@pytest.mark.parametrize("age", [timedelta(0), timedelta(seconds=-1)])
def test_an_age_must_be_positive(age: timedelta) -> None:
    """A zero or negative age is refused (None is how to keep everything)."""
    with pytest.raises(ValueError, match="more than zero"):
        RetentionPolicy(age=age)


@pytest.mark.parametrize("status", list(DeliveryStatus))
def test_only_final_deliveries_last_changed_before_the_horizon_are_purgeable(status: DeliveryStatus) -> None:
    """Succeeded, failed and cancelled deliveries go; new, scheduled, retrying and held never do."""
    assert delivery_purgeable(status, OLD, HORIZON) is (status in FINAL)
    assert not delivery_purgeable(status, HORIZON, HORIZON)


def test_final_states_are_exactly_the_three_ends() -> None:
    """The final states are the ones a delivery never leaves by itself."""
    assert {DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED} == FINAL


def test_an_event_goes_only_with_all_its_deliveries() -> None:
    """An old event goes when every delivery is purgeable; one held or recent delivery keeps it."""
    done = (DeliveryStatus.SUCCEEDED, OLD)
    assert event_purgeable(OLD, [], HORIZON)
    assert event_purgeable(OLD, [done, (DeliveryStatus.FAILED, OLD)], HORIZON)
    assert not event_purgeable(OLD, [done, (DeliveryStatus.HELD, OLD)], HORIZON)
    assert not event_purgeable(OLD, [done, (DeliveryStatus.SUCCEEDED, NOW)], HORIZON)
    assert not event_purgeable(HORIZON, [done], HORIZON)


def test_a_deleted_endpoint_goes_once_old_and_without_deliveries() -> None:
    """Only a deleted endpoint, deleted before the horizon, with no delivery left, is purgeable."""
    assert endpoint_purgeable(EndpointStatus.DELETED, OLD, False, HORIZON)
    assert not endpoint_purgeable(EndpointStatus.DELETED, OLD, True, HORIZON)
    assert not endpoint_purgeable(EndpointStatus.DELETED, NOW, False, HORIZON)
    assert not endpoint_purgeable(EndpointStatus.DISABLED, OLD, False, HORIZON)
    assert not endpoint_purgeable(EndpointStatus.DELETED, None, False, HORIZON)


def test_the_cursor_is_the_last_event_examined_until_the_pass_is_over() -> None:
    """A full batch, or one cut short by its delivery limit, goes on from its last examined
    event; a batch that found fewer events than it asked for ends the pass."""
    assert next_cursor(["a", "b", "c"], 3, 3) == "c"
    assert next_cursor(["a", "b", "c"], 2, 3) == "b"
    assert next_cursor(["a", "b"], 2, 3) is None
    assert next_cursor(["a", "b"], 1, 3) == "a"
