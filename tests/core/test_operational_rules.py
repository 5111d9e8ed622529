"""Operational notices: when one is due, who gets it, and what it says (ADR 0017)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attribution_webhooks.adapters.payloads import check_event_data
from attribution_webhooks.core import operational as ops
from attribution_webhooks.core.catalog import check_event_type, check_subscribable_type
from attribution_webhooks.core.errors import UnknownEventType, ValidationError
from attribution_webhooks.core.events import AttemptFailed, DeliveryFailed, DisableReason, EndpointDisabled
from attribution_webhooks.core.outcomes import ErrorKind

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_the_first_failure_of_a_healthy_endpoint_is_due() -> None:
    """Given a healthy enabled endpoint never noticed, when it fails, then a notice is due."""
    assert ops.failing_notice_due(None, True, None, T0, HOUR)


def test_a_failure_in_a_run_of_failures_is_not_due() -> None:
    """Given an endpoint already failing, when it fails again, then no notice: only the first failure counts."""
    assert not ops.failing_notice_due(T0 - HOUR, True, None, T0, HOUR)


def test_a_disabled_endpoint_is_not_noticed_as_failing() -> None:
    """Given a disabled endpoint (an attempt in flight when it was disabled), then no failing notice."""
    assert not ops.failing_notice_due(None, False, None, T0, HOUR)


def test_the_cool_down_holds_back_a_flapping_endpoint() -> None:
    """Given a notice 59 minutes ago, no notice; given one an hour ago, a notice again."""
    assert not ops.failing_notice_due(None, True, T0 - timedelta(minutes=59), T0, HOUR)
    assert ops.failing_notice_due(None, True, T0 - HOUR, T0, HOUR)


def test_a_cool_down_must_be_positive() -> None:
    """A zero cool-down would let a flapping endpoint flood: it is refused."""
    with pytest.raises(ValueError, match="positive"):
        ops.failing_notice_due(None, True, None, T0, timedelta(0))


def test_any_notice_within_the_cool_down_is_in_this_window_or_the_last() -> None:
    """Windows are a cool-down long: a moment less than a cool-down ago is in the current or the previous one."""
    for minutes in (0, 1, 30, 59, 60, 61, 119):
        now = T0 + timedelta(minutes=minutes)
        earlier = now - timedelta(minutes=59)
        assert ops.failing_window(now, HOUR) - ops.failing_window(earlier, HOUR) in (0, 1)


def test_a_notice_is_never_sent_to_the_endpoint_it_is_about() -> None:
    """Every subscriber receives it but the subject, whose failure or disabling it reports."""
    assert ops.recipients(["wh_1", "wh_2", "wh_3"], "wh_2") == ["wh_1", "wh_3"]
    assert ops.recipients(["wh_2"], "wh_2") == []


def test_notice_ids_are_derived_from_their_cause() -> None:
    """The same cause gives the same id (a second write conflicts); another cause another id."""
    assert ops.exhausted_event_id("dlv_1", 7) == ops.exhausted_event_id("dlv_1", 7)
    assert ops.exhausted_event_id("dlv_1", 7) != ops.exhausted_event_id("dlv_1", 12)
    assert ops.disabled_event_id("wh_1", 3).startswith("evt_")


def test_operational_types_are_subscribable_but_not_publishable() -> None:
    """A webhook may subscribe to webhook.failing; publishing it is refused with its own reason."""
    assert check_subscribable_type("webhook.failing") is ops.OperationalType.WEBHOOK_FAILING
    with pytest.raises(ValidationError, match="only the service publishes it"):
        check_event_type("webhook.failing")
    with pytest.raises(UnknownEventType, match=r"delivery\.exhausted"):
        check_subscribable_type("delivery.lost")


def test_every_payload_built_passes_its_published_schema() -> None:
    """The data of each notice, built by hand in the core, is valid against the class /event-types shows."""
    failed = AttemptFailed("dlv_1", "wh_1", 5, T0, 12.5, None, ErrorKind.CONNECTION_REFUSED, "refused", "")
    http = AttemptFailed("dlv_1", "wh_1", 1, T0, 12.5, 503, None, "HTTP 503", "down")
    exhausted = DeliveryFailed("dlv_1", "wh_1", 5, T0 + HOUR)
    url = "https://a.example/h"
    check_event_data(
        "delivery.exhausted", ops.exhausted_data(url, "evt_1", "deal.attributed", exhausted, failed)
    )
    check_event_data(
        "delivery.exhausted", ops.exhausted_data(url, "evt_1", "deal.attributed", exhausted, None)
    )
    check_event_data("webhook.failing", ops.failing_data(url, "evt_1", http))
    check_event_data("webhook.failing", ops.failing_data(url, "evt_1", failed))
    for disabled in (
        EndpointDisabled("wh_1", DisableReason.MANUAL, T0),
        EndpointDisabled("wh_1", DisableReason.FAILING, T0, T0 - HOUR),
    ):
        check_event_data("webhook.disabled", ops.disabled_data(url, disabled))
    data = ops.exhausted_data(url, "evt_1", "deal.attributed", exhausted, failed)
    assert data["lastError"] == "connection_refused"
    assert data["attempts"] == 5
