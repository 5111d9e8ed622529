"""Operational events: what the service itself tells an account about its webhooks (ADR 0017).

Three system event types, modelled on Svix's operational webhooks. An account receives them by
subscribing a webhook to them, like any other type; they are signed, retried and logged like
any other event. The rules, in their one home:

- ``webhook.disabled``: an endpoint was disabled, by hand or automatically (with the reason);
  one per ``EndpointDisabled`` fact.
- ``webhook.failing``: an endpoint that was healthy failed (the first failed attempt after a
  success, an enabling or its registration), unless a ``webhook.failing`` about it went out less
  than a cool-down ago: a flapping endpoint does not flood its account.
- ``delivery.exhausted``: a delivery failed its last retry; one per ``DeliveryFailed`` fact,
  except for deliveries of operational events themselves (no notice about a notice).

A notice is never sent to the endpoint it is about: that endpoint is the one failing or
disabled, so it would fail (or wait, held) too, and feed the loop. Event ids are derived from
the fact (stream and version, or the cool-down window), so writing a notice twice is a conflict,
never a second notice.

Payloads are built here as JSON (the services cannot reach the adapters' converter); the
classes below are their schema for ``GET /event-types``, and a test checks every payload built
here against them with the converter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from attrs import frozen

from .events import AttemptFailed, DeliveryFailed, DisableReason, EndpointDisabled
from .wire import JsonValue, format_timestamp

__all__ = [
    "DEFAULT_FAILING_COOLDOWN",
    "OPERATIONAL_SAMPLES",
    "OPERATIONAL_TYPES",
    "DeliveryExhausted",
    "OperationalType",
    "WebhookDisabled",
    "WebhookFailing",
    "disabled_data",
    "disabled_event_id",
    "exhausted_data",
    "exhausted_event_id",
    "failing_data",
    "failing_event_id",
    "failing_notice_due",
    "failing_window",
    "is_operational",
    "recipients",
]

DEFAULT_FAILING_COOLDOWN = timedelta(hours=1)


class OperationalType(StrEnum):
    """The system event types: published by the service, never through ``POST /events``."""

    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_FAILING = "webhook.failing"
    DELIVERY_EXHAUSTED = "delivery.exhausted"


OPERATIONAL_TYPES: tuple[str, ...] = tuple(member.value for member in OperationalType)


def is_operational(event_type: str) -> bool:
    """Whether ``event_type`` is one of the system's own event types."""
    return event_type in OPERATIONAL_TYPES


# --- payload schemas ---------------------------------------------------------------------------


@frozen
class WebhookDisabled:
    """``webhook.disabled``: a webhook stopped receiving deliveries; they are held until it is
    enabled again. ``reason`` is ``manual`` (someone disabled it) or ``failing`` (every delivery
    failed since ``failingSince``, for too long)."""

    webhook_id: str
    url: str
    reason: DisableReason
    disabled_at: datetime
    failing_since: datetime | None


@frozen
class WebhookFailing:
    """``webhook.failing``: a webhook that was healthy failed an attempt (at most one notice per
    webhook per cool-down, an hour by default). The attempt is retried on the usual schedule."""

    webhook_id: str
    url: str
    failing_since: datetime
    delivery_id: str
    event_id: str
    attempt: int
    status_code: int | None
    error: str | None
    detail: str


@frozen
class DeliveryExhausted:
    """``delivery.exhausted``: a delivery failed its last retry; only a manual retry sends it
    again (``POST /deliveries/{id}/retry``)."""

    delivery_id: str
    webhook_id: str
    url: str
    event_id: str
    event_type: str
    attempts: int
    failed_at: datetime
    last_status_code: int | None
    last_error: str | None


# --- ids ---------------------------------------------------------------------------------------


def disabled_event_id(endpoint_id: str, version: int) -> str:
    """The notice of the ``EndpointDisabled`` written as version ``version`` of the endpoint."""
    return f"evt_ops_disabled_{endpoint_id}_{version}"


def exhausted_event_id(delivery_id: str, version: int) -> str:
    """The notice of the ``DeliveryFailed`` written as version ``version`` of the delivery."""
    return f"evt_ops_exhausted_{delivery_id}_{version}"


def failing_window(now: datetime, cooldown: timedelta) -> int:
    """The number of the cool-down window ``now`` falls in (windows are ``cooldown`` long)."""
    return int(now.timestamp() // cooldown.total_seconds())


def failing_event_id(endpoint_id: str, window: int) -> str:
    """The ``webhook.failing`` notice about ``endpoint_id`` in cool-down window ``window``: one at
    most per window, by construction."""
    return f"evt_ops_failing_{endpoint_id}_{window}"


# --- rules -------------------------------------------------------------------------------------


def failing_notice_due(
    failing_since: datetime | None,
    enabled: bool,
    last_notice_at: datetime | None,
    now: datetime,
    cooldown: timedelta,
) -> bool:
    """Whether a failed attempt recorded at ``now`` makes a ``webhook.failing`` notice due.

    ``failing_since`` is the endpoint's run of failures as it was before the attempt (None: it
    was healthy), ``last_notice_at`` when the last ``webhook.failing`` about it was published.
    Due only for the first failure after a success, on an enabled endpoint, and a cool-down
    after the last notice."""
    if cooldown <= timedelta(0):
        raise ValueError("the cool-down of webhook.failing notices must be positive")
    if failing_since is not None or not enabled:
        return False
    return last_notice_at is None or now - last_notice_at >= cooldown


def recipients(subscriber_ids: Sequence[str], subject_endpoint_id: str) -> list[str]:
    """Who receives a notice about ``subject_endpoint_id``: every subscriber but that endpoint."""
    return [endpoint_id for endpoint_id in subscriber_ids if endpoint_id != subject_endpoint_id]


# --- payloads ------------------------------------------------------------------------------------


def _time(moment: datetime | None) -> JsonValue:
    return None if moment is None else format_timestamp(moment)


def disabled_data(url: str, event: EndpointDisabled) -> dict[str, JsonValue]:
    """The ``data`` of the ``webhook.disabled`` notice of ``event`` (see ``WebhookDisabled``)."""
    return {
        "webhookId": event.endpoint_id,
        "url": url,
        "reason": event.reason.value,
        "disabledAt": format_timestamp(event.disabled_at),
        "failingSince": _time(event.failing_since),
    }


def failing_data(url: str, event_id: str, failed: AttemptFailed) -> dict[str, JsonValue]:
    """The ``data`` of the ``webhook.failing`` notice of the failed attempt ``failed`` of a
    delivery of event ``event_id`` (see ``WebhookFailing``)."""
    return {
        "webhookId": failed.endpoint_id,
        "url": url,
        "failingSince": format_timestamp(failed.started_at),
        "deliveryId": failed.delivery_id,
        "eventId": event_id,
        "attempt": failed.attempt,
        "statusCode": failed.status_code,
        "error": None if failed.error is None else failed.error.value,
        "detail": failed.detail,
    }


def exhausted_data(
    url: str, event_id: str, event_type: str, failed: DeliveryFailed, last: AttemptFailed | None
) -> dict[str, JsonValue]:
    """The ``data`` of the ``delivery.exhausted`` notice of ``failed`` (see ``DeliveryExhausted``);
    ``last`` is its last failed attempt, when it was written with it."""
    return {
        "deliveryId": failed.delivery_id,
        "webhookId": failed.endpoint_id,
        "url": url,
        "eventId": event_id,
        "eventType": event_type,
        "attempts": failed.attempts,
        "failedAt": format_timestamp(failed.failed_at),
        "lastStatusCode": None if last is None else last.status_code,
        "lastError": None if last is None or last.error is None else last.error.value,
    }


#: An example ``data`` per operational type, for ``GET /event-types`` and "Send Test Event".
OPERATIONAL_SAMPLES: Mapping[str, Mapping[str, JsonValue]] = {
    OperationalType.WEBHOOK_DISABLED: {
        "webhookId": "wh_abc123",
        "url": "https://yourapp.com/webhooks/attribution",
        "reason": "failing",
        "disabledAt": "2024-01-23T15:00:00Z",
        "failingSince": "2024-01-20T15:00:00Z",
    },
    OperationalType.WEBHOOK_FAILING: {
        "webhookId": "wh_abc123",
        "url": "https://yourapp.com/webhooks/attribution",
        "failingSince": "2024-01-20T15:00:00Z",
        "deliveryId": "dlv_xyz789",
        "eventId": "evt_123456",
        "attempt": 1,
        "statusCode": 503,
        "error": None,
        "detail": "HTTP 503",
    },
    OperationalType.DELIVERY_EXHAUSTED: {
        "deliveryId": "dlv_xyz789",
        "webhookId": "wh_abc123",
        "url": "https://yourapp.com/webhooks/attribution",
        "eventId": "evt_123456",
        "eventType": "deal.attributed",
        "attempts": 5,
        "failedAt": "2024-01-20T16:21:00Z",
        "lastStatusCode": None,
        "lastError": "connection_refused",
    },
}
