"""Operational notices on every store (memory, SQLite, PostgreSQL): written in the append of
their cause, and a notice written twice is dropped, never doubled (ADR 0017)."""

from __future__ import annotations

import json
from datetime import timedelta

from attribution_webhooks.app.services import NewEvent, ServiceSettings, WebhookService
from attribution_webhooks.app.services.operational import OperationalEvents, Outcome, append_with_notices
from attribution_webhooks.core import delivery as dlv
from attribution_webhooks.core import endpoint as ep
from attribution_webhooks.core.outcomes import HttpResponse
from attribution_webhooks.core.ports import Storage, StreamAppend
from attribution_webhooks.core.retry import RetryPolicy
from attribution_webhooks.core.samples import SAMPLE_DATA
from attribution_webhooks.testing import FakeClock, SeededRandom, SequentialIds


async def test_an_exhausted_delivery_and_its_notice_are_one_append(store: Storage) -> None:
    """The last failed attempt, its delivery.exhausted and the notice's delivery to the subscriber
    are written together; the same notice again is left out, the rest still written."""
    clock = FakeClock()
    settings = ServiceSettings(retry=RetryPolicy(delays=()))  # one attempt, then exhausted
    service = WebhookService(store, clock, SequentialIds(), SeededRandom(1), settings)
    ops = await service.register_endpoint("acct_1", "https://ops.example/n", ["delivery.exhausted"])
    dead = await service.register_endpoint("acct_1", "https://dead.example/h", ["deal.attributed"])
    published = await service.publish("acct_1", NewEvent("deal.attributed", SAMPLE_DATA["deal.attributed"]))
    [delivery_id] = published.delivery_ids
    view = await store.delivery(delivery_id)
    assert view is not None
    now = clock.now()
    outcome = HttpResponse(500, timedelta(milliseconds=3), "no")
    events = tuple(dlv.decide(dlv.RecordOutcome(1, now, outcome, now), view.delivery, settings.retry))
    making = OperationalEvents.over(service.ports)
    notices = await making.of_outcomes([Outcome(view.delivery, view.version, dead, events)])
    kinds = [notice[0].events[0].event_type for notice in notices[delivery_id]]  # type: ignore[union-attr]
    assert kinds == ["delivery.exhausted", "webhook.failing"]  # dead was healthy when claimed
    notice = notices[delivery_id][0]
    await append_with_notices(store, [StreamAppend(delivery_id, view.version, events)], notices[delivery_id])

    [event_id] = [
        d.delivery.event_id for d in await store.deliveries("acct_1", endpoint_id=ops.endpoint.endpoint_id)
    ]
    stored = await store.event("acct_1", event_id)
    assert stored is not None
    assert stored.event_type == "delivery.exhausted"
    assert json.loads(stored.body)["data"]["deliveryId"] == delivery_id
    failed = await store.delivery(delivery_id)
    assert failed is not None
    assert failed.delivery.status is dlv.DeliveryStatus.FAILED

    # Another worker recording the same cause would write the same notice: it is dropped.
    other = await service.register_endpoint("acct_1", "https://other.example/h", ["partner.created"])
    update = ep.decide(ep.Update(clock.now(), description="changed"), other.endpoint, ep.EndpointRules())
    await append_with_notices(
        store, [StreamAppend(other.endpoint.endpoint_id, other.version, tuple(update))], [notice]
    )
    assert len(await store.deliveries("acct_1", event_id=event_id)) == 1
    changed = await store.endpoint(other.endpoint.endpoint_id)
    assert changed is not None
    assert changed.endpoint.description == "changed"
