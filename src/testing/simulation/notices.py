"""The invariants of operational notices (ADR 0017), checked on a run's event log.

- every ``EndpointDisabled`` (by hand or automatic) has exactly one ``webhook.disabled`` notice,
  with its reason and time;
- every ``DeliveryFailed`` of a delivery of an ordinary event has exactly one
  ``delivery.exhausted`` notice; a delivery of a notice has none (no notice about a notice);
- ``webhook.failing`` notices about one endpoint are at least the cool-down apart, and each
  names a failed attempt that began a run of failures (its first failure after a success);
- no notice is published but for one of those causes.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import datetime

from ...core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryFailed,
    DeliveryScheduled,
    EndpointDisabled,
    EndpointEnabled,
    EndpointRegistered,
    EventPublished,
)
from ...core.operational import DEFAULT_FAILING_COOLDOWN, is_operational
from ...core.wire import format_timestamp
from .model import Record

__all__ = ["check_notices", "notice_subject"]


def notice_subject(event: EventPublished) -> str | None:
    """The endpoint an operational event is about; None for any other event."""
    if not is_operational(event.event_type) or event.test:
        return None
    subject = json.loads(event.body)["data"]["webhookId"]
    assert isinstance(subject, str)
    return subject


def check_notices(record: Record) -> list[str]:
    """Each cause has exactly one notice, and each notice a cause."""
    violations: list[str] = []
    notices: Counter[tuple[str, ...]] = Counter()
    failing: dict[str, list[tuple[datetime, str]]] = {}
    event_types: dict[str, str] = {}
    for published in record.published.values():
        if not is_operational(published.event_type) or published.test:
            continue
        data = json.loads(published.body)["data"]
        if published.event_type == "webhook.disabled":
            notices[("disabled", data["webhookId"], data["disabledAt"], data["reason"])] += 1
        elif published.event_type == "delivery.exhausted":
            notices[("exhausted", data["deliveryId"], data["failedAt"])] += 1
            if is_operational(data["eventType"]):
                violations.append(f"{published.event_id} is a notice about the exhaustion of a notice")
        else:
            failing.setdefault(data["webhookId"], []).append((published.published_at, data["failingSince"]))
    causes: Counter[tuple[str, ...]] = Counter()
    for endpoint_id, history in record.histories.items():
        for _, endpoint_event in history.events:
            if isinstance(endpoint_event, EndpointDisabled):
                at = format_timestamp(endpoint_event.disabled_at)
                causes[("disabled", endpoint_id, at, endpoint_event.reason.value)] += 1
    first_failures: set[tuple[str, str]] = set()
    for delivery_id, events in record.streams.items():
        for _, delivery_event in events:
            if isinstance(delivery_event, DeliveryScheduled):
                event_types[delivery_id] = delivery_event.event_type
            if isinstance(delivery_event, DeliveryFailed) and not is_operational(event_types[delivery_id]):
                causes[("exhausted", delivery_id, format_timestamp(delivery_event.failed_at))] += 1
    for endpoint_id, timeline in _timelines(record).items():
        healthy = True  # as the endpoint's failing_since says: a success, enabling or registering resets it
        for event in timeline:
            if isinstance(event, AttemptFailed):
                if healthy:
                    first_failures.add((endpoint_id, format_timestamp(event.started_at)))
                healthy = False
            else:
                healthy = True
    for key in sorted(set(causes) | set(notices)):
        if causes[key] != notices[key]:
            violations.append(f"{key[0]} {key[1:]}: {causes[key]} causes, {notices[key]} notices")
    for endpoint_id, times in failing.items():
        times.sort()
        for (earlier, _), (later, _) in itertools.pairwise(times):
            if later - earlier < DEFAULT_FAILING_COOLDOWN:
                violations.append(
                    f"webhook.failing about {endpoint_id} twice within the cool-down: {earlier}, {later}"
                )
        for _, since in times:
            if (endpoint_id, since) not in first_failures:
                violations.append(f"webhook.failing about {endpoint_id} names {since}, not a first failure")
    return violations


def _timelines(
    record: Record,
) -> dict[str, list[AttemptFailed | AttemptSucceeded | EndpointEnabled | EndpointRegistered]]:
    """Per endpoint, in log order, what moves its run of failures: attempts, enabling, registering."""
    found: list[tuple[int, AttemptFailed | AttemptSucceeded | EndpointEnabled | EndpointRegistered]] = []
    for events in record.streams.values():
        found += [(pos, e) for pos, e in events if isinstance(e, AttemptFailed | AttemptSucceeded)]
    for history in record.histories.values():
        found += [
            (pos, e) for pos, e in history.events if isinstance(e, EndpointEnabled | EndpointRegistered)
        ]
    timelines: dict[str, list[AttemptFailed | AttemptSucceeded | EndpointEnabled | EndpointRegistered]] = {}
    for _, event in sorted(found, key=lambda item: item[0]):
        timelines.setdefault(event.endpoint_id, []).append(event)
    return timelines
