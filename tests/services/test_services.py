"""The use cases over the in-memory store: publishing, fan-out, idempotency, tenancy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.app.services import (
    DuplicateEventConflict,
    NewEvent,
    ServiceSettings,
    WebhookService,
)
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.endpoint import EndpointRules, EndpointStatus
from attribution_webhooks.core.errors import NotFound, UnknownEventType, ValidationError
from attribution_webhooks.testing import FakeClock, SeededRandom, SequentialIds

T = TypeVar("T")
URL = "https://yourdomain.com/webhooks/attribution"


def run(test: Callable[[WebhookService, FakeClock], Awaitable[T]]) -> T:
    clock = FakeClock()
    service = WebhookService(MemoryStore(), clock, SequentialIds(), SeededRandom(1), ServiceSettings())
    return asyncio.run(test(service, clock))


def test_publish_fans_out_to_subscribed_endpoints_of_the_account_only() -> None:
    """One delivery per endpoint of that account subscribed to the type; none elsewhere."""

    async def scenario(service: WebhookService, _: FakeClock) -> None:
        deals = await service.register_endpoint("acct_1", URL, ["deal.attributed"])
        await service.register_endpoint("acct_1", URL, ["partner.created"])
        await service.register_endpoint("acct_2", URL, ["deal.attributed"])
        result = await service.publish("acct_1", NewEvent("deal.attributed", {"dealId": "deal_xyz"}))
        deliveries = await service.ports.store.deliveries("acct_1", event_id=result.event_id)
        assert [d.delivery.endpoint_id for d in deliveries] == [deals.endpoint.endpoint_id]
        assert await service.ports.store.deliveries("acct_2") == []

    run(scenario)


def test_the_body_is_the_spec_envelope() -> None:
    """id, type, timestamp (UTC with Z), data: in the spec's order, compact."""

    async def scenario(service: WebhookService, _: FakeClock) -> None:
        result = await service.publish(
            "acct_1", NewEvent("partner.created", {"id": "partner_abc"}, id="evt_124")
        )
        event = await service.event("acct_1", result.event_id)
        assert event.body == (
            '{"id":"evt_124","type":"partner.created","timestamp":"2024-01-20T15:00:00Z","data":{"id":"partner_abc"}}'
        )

    run(scenario)


def test_publishing_the_same_id_twice_delivers_once() -> None:
    """The second publish returns the first's deliveries and stores nothing new."""

    async def scenario(service: WebhookService, clock: FakeClock) -> None:
        await service.register_endpoint("acct_1", URL, ["deal.attributed"])
        first = await service.publish("acct_1", NewEvent("deal.attributed", {"dealId": "d"}, id="evt_1"))
        clock.advance(timedelta(seconds=5))  # a retry comes later, with its own timestamp
        events_before = len(await service.ports.store.read_all())
        again = await service.publish("acct_1", NewEvent("deal.attributed", {"dealId": "d"}, id="evt_1"))
        assert again.duplicate
        assert again.delivery_ids == first.delivery_ids
        assert len(await service.ports.store.read_all()) == events_before

    run(scenario)


def test_reusing_an_id_for_other_data_is_a_conflict() -> None:
    """Same id, different content: refuse, rather than silently drop the second event."""

    async def scenario(service: WebhookService, _: FakeClock) -> None:
        await service.publish("acct_1", NewEvent("deal.attributed", {"dealId": "d"}, id="evt_1"))
        with pytest.raises(DuplicateEventConflict, match="evt_1"):
            await service.publish("acct_1", NewEvent("deal.attributed", {"dealId": "other"}, id="evt_1"))
        other_account = await service.publish(
            "acct_2", NewEvent("deal.attributed", {"dealId": "x"}, id="evt_1")
        )
        assert not other_account.duplicate  # ids are per account

    run(scenario)


@pytest.mark.parametrize(
    ("event", "error", "field"),
    [
        (NewEvent("deal.created", {}), UnknownEventType, "type"),
        (NewEvent("deal.attributed", {}, id="123"), ValidationError, "id"),
        (NewEvent("deal.attributed", {"amount": 2**60}), ValidationError, "$.data.amount"),
    ],
)
def test_bad_events_are_refused_before_anything_is_stored(
    event: NewEvent, error: type[Exception], field: str
) -> None:
    """Unknown types, malformed ids and values JavaScript cannot hold: nothing is written."""

    async def scenario(service: WebhookService, _: FakeClock) -> None:
        await service.register_endpoint("acct_1", URL, ["deal.attributed"])
        before = len(await service.ports.store.read_all())
        with pytest.raises(error) as raised:
            await service.publish("acct_1", event)
        assert isinstance(raised.value, ValidationError)
        assert raised.value.field == field
        assert len(await service.ports.store.read_all()) == before

    run(scenario)


def test_disabled_endpoints_get_held_deliveries_released_on_enable() -> None:
    """Nothing is dropped while an endpoint is disabled; enabling makes it all due at once."""

    async def scenario(service: WebhookService, clock: FakeClock) -> None:
        view = await service.register_endpoint("acct_1", URL, ["deal.attributed"])
        endpoint_id = view.endpoint.endpoint_id
        await service.disable_endpoint("acct_1", endpoint_id)
        for n in range(3):
            await service.publish("acct_1", NewEvent("deal.attributed", {"n": n}))
        held = await service.ports.store.deliveries("acct_1", statuses=[DeliveryStatus.HELD])
        assert len(held) == 3
        assert await service.ports.store.next_due() is None
        clock.advance(timedelta(hours=1))
        await service.enable_endpoint("acct_1", endpoint_id)
        scheduled = await service.ports.store.deliveries("acct_1", statuses=[DeliveryStatus.SCHEDULED])
        assert len(scheduled) == 3
        assert await service.ports.store.next_due() == clock.now()

    run(scenario)


def test_deleting_an_endpoint_cancels_what_it_was_still_owed() -> None:
    """Later deliveries to a deleted webhook stop."""

    async def scenario(service: WebhookService, _: FakeClock) -> None:
        view = await service.register_endpoint("acct_1", URL, ["deal.attributed"])
        await service.publish("acct_1", NewEvent("deal.attributed", {}))
        await service.delete_endpoint("acct_1", view.endpoint.endpoint_id)
        (delivery,) = await service.ports.store.deliveries("acct_1")
        assert delivery.delivery.status is DeliveryStatus.CANCELLED
        assert await service.ports.store.next_due() is None
        with pytest.raises(NotFound):
            await service.endpoint("acct_1", view.endpoint.endpoint_id)

    run(scenario)


def test_other_accounts_see_not_found() -> None:
    """One account's key can neither see nor change another's endpoints or deliveries."""

    async def scenario(service: WebhookService, _: FakeClock) -> None:
        view = await service.register_endpoint("acct_1", URL, ["deal.attributed"])
        endpoint_id = view.endpoint.endpoint_id
        result = await service.publish("acct_1", NewEvent("deal.attributed", {}))
        for attempt in (
            service.endpoint("acct_2", endpoint_id),
            service.disable_endpoint("acct_2", endpoint_id),
            service.delete_endpoint("acct_2", endpoint_id),
            service.rotate_secret("acct_2", endpoint_id),
            service.send_test("acct_2", endpoint_id, "deal.attributed"),
            service.delivery("acct_2", result.delivery_ids[0]),
            service.event("acct_2", result.event_id),
        ):
            with pytest.raises(NotFound):
                await attempt
        assert (await service.endpoint("acct_1", endpoint_id)).endpoint.status is EndpointStatus.ENABLED

    run(scenario)


def test_a_test_event_goes_to_one_endpoint_marked_as_a_test() -> None:
    """Send Test Event: the spec's sample of that type, to that endpoint only."""

    async def scenario(service: WebhookService, _: FakeClock) -> None:
        target = await service.register_endpoint("acct_1", URL, ["partner.created"])
        await service.register_endpoint("acct_1", URL, ["deal.attributed"])
        result = await service.send_test("acct_1", target.endpoint.endpoint_id, "deal.attributed")
        (delivery,) = await service.ports.store.deliveries("acct_1", event_id=result.event_id)
        assert delivery.delivery.endpoint_id == target.endpoint.endpoint_id
        assert delivery.delivery.test
        event = await service.event("acct_1", result.event_id)
        assert event.test
        assert json.loads(event.body)["data"]["dealId"] == "deal_xyz"

    run(scenario)


def test_generated_secrets_are_strong_and_standard_webhooks_shaped() -> None:
    """Without a secret, one is made: whsec_ + base64 of 24 random bytes."""

    async def scenario(service: WebhookService, _: FakeClock) -> None:
        view = await service.register_endpoint("acct_1", URL, ["deal.attributed"])
        secret = view.endpoint.secret
        assert secret.startswith("whsec_")
        assert len(secret) == len("whsec_") + 32

    run(scenario)


def test_production_rules_refuse_plain_http() -> None:
    """Webhook endpoints must use HTTPS in production (spec, best practice 4)."""

    async def scenario(service: WebhookService, _: FakeClock) -> None:
        with pytest.raises(ValidationError, match="https"):
            await service.register_endpoint("acct_1", "http://yourdomain.com/hook", ["deal.attributed"])

    run(scenario)
    relaxed = ServiceSettings(endpoint_rules=EndpointRules(require_https=False))
    service = WebhookService(MemoryStore(), FakeClock(), SequentialIds(), SeededRandom(1), relaxed)
    view = asyncio.run(service.register_endpoint("acct_1", "http://127.0.0.1:9000/hook", ["deal.attributed"]))
    assert view.endpoint.url == "http://127.0.0.1:9000/hook"


def test_an_ordered_endpoint_gets_its_deliveries_in_line_and_recovered_oldest_first() -> None:
    """Publishing to an ordered endpoint puts each delivery in its line, a test send stays out;
    recovering its failures sends them again in publish order, one at a time."""
    from attribution_webhooks.core.events import (
        AttemptFailed,
        DeliveryFailed,
        DeliveryScheduled,
        RedeliveryRequested,
    )
    from attribution_webhooks.core.ports import StreamAppend

    async def scenario(service: WebhookService, clock: FakeClock) -> None:
        store = service.ports.store
        view = await service.register_endpoint("acct_1", URL, ["deal.attributed"], ordered=True)
        endpoint_id = view.endpoint.endpoint_id
        ids = []
        for n in range(3):
            result = await service.publish("acct_1", NewEvent("deal.attributed", {"n": n}))
            ids += result.delivery_ids
        test = await service.send_test("acct_1", endpoint_id, "deal.attributed")
        log = [r.event for r in await store.read_all()]
        scheduled = {e.delivery_id: e.ordered for e in log if isinstance(e, DeliveryScheduled)}
        assert scheduled == {**dict.fromkeys(ids, True), test.delivery_ids[0]: False}
        now = clock.now()
        for delivery_id in ids:
            failed = AttemptFailed(delivery_id, endpoint_id, 1, now, 1.0, 500, None, "HTTP 500", "")
            await store.append(
                StreamAppend(delivery_id, 1, (failed, DeliveryFailed(delivery_id, endpoint_id, 1, now)))
            )
        clock.advance(timedelta(seconds=1))
        assert await service.recover("acct_1", endpoint_id, now - timedelta(hours=1)) == 3
        again = [e for e in (r.event for r in await store.read_all()) if isinstance(e, RedeliveryRequested)]
        assert [(e.delivery_id, e.ordered) for e in again] == [(i, True) for i in ids]
        claimed = await store.claim(clock.now(), 10, timedelta(minutes=1))
        assert sorted(d.delivery.delivery_id for d in claimed) == sorted([ids[0], test.delivery_ids[0]])

    run(scenario)
