"""Events for the store tests: deliveries due, and their outcomes."""

from __future__ import annotations

from datetime import datetime

from attribution_webhooks.core.events import (
    AttemptSucceeded,
    DeliveryScheduled,
    EndpointRegistered,
    EventPublished,
    event_stream,
)
from attribution_webhooks.core.ports import DueDelivery, StreamAppend

ACCOUNT = "acct_1"
ENDPOINT = "wh_1"


def endpoint(at: datetime) -> StreamAppend:
    url, secret = "https://example.com/hook", "s3cret-s3cret-XYZ"
    registered = EndpointRegistered(ENDPOINT, ACCOUNT, url, ("deal.attributed",), secret, "", False, at)
    return StreamAppend(ENDPOINT, 0, (registered,))


def published(event_id: str, delivery_ids: list[str], at: datetime, held: bool = False) -> list[StreamAppend]:
    """An event and one delivery of it per id, due at ``at`` unless held."""
    event = EventPublished(event_id, ACCOUNT, "deal.attributed", f'{{"id":"{event_id}"}}', at, at)
    appends = [StreamAppend(event_stream(ACCOUNT, event_id), 0, (event,))]
    for delivery_id in delivery_ids:
        scheduled = DeliveryScheduled(
            delivery_id, ACCOUNT, ENDPOINT, event_id, "deal.attributed", at, held=held
        )
        appends.append(StreamAppend(delivery_id, 0, (scheduled,)))
    return appends


def success(due: DueDelivery, at: datetime) -> StreamAppend:
    """The outcome a worker records for a leased delivery that was delivered."""
    delivery = due.delivery
    attempt = delivery.attempts + 1
    event = AttemptSucceeded(delivery.delivery_id, delivery.endpoint_id, attempt, at, 1.0, 200, "OK")
    return StreamAppend(delivery.delivery_id, due.version, (event,))
