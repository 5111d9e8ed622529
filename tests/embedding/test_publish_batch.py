"""``WebhookService.publish_batch`` and ``publish_within`` over the in-memory store: one append
per batch, a result per event, idempotency per event id, errors naming the event."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.app.services import (
    DuplicateEventConflict,
    NewEvent,
    ServiceSettings,
    WebhookService,
)
from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.ports import StreamAppend
from attribution_webhooks.core.views import EndpointView, EventView
from attribution_webhooks.testing import FakeClock, SeededRandom, SequentialIds

URL = "https://yourdomain.com/webhooks/attribution"
TRACKED = {"id": "evt_xyz", "userId": "user_123", "partnerId": "partner_abc", "type": "click"}


class CountingStore(MemoryStore):
    """The memory store, counting ``append`` calls (what a batch promises is one)."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[int] = []

    async def append(self, *appends: StreamAppend) -> int:
        self.appends.append(len(appends))
        return await super().append(*appends)


def _service() -> tuple[WebhookService, CountingStore]:
    store = CountingStore()
    return WebhookService(store, FakeClock(), SequentialIds(), SeededRandom(1), ServiceSettings()), store


def test_a_batch_is_one_append_with_a_result_per_event_in_order() -> None:
    """Three events to two subscribers: one append of 3 event streams and 6 deliveries."""

    async def scenario() -> None:
        service, store = _service()
        await service.register_endpoint("acct_1", URL, ["event.tracked"])
        await service.register_endpoint("acct_1", URL, ["event.tracked"])
        store.appends.clear()
        events = [NewEvent("event.tracked", TRACKED, id=f"evt_t{i}") for i in range(3)]
        results = await service.publish_batch("acct_1", events)
        assert store.appends == [9]
        assert [r.event_id for r in results] == ["evt_t0", "evt_t1", "evt_t2"]
        assert all(len(r.delivery_ids) == 2 and not r.duplicate for r in results)

    asyncio.run(scenario())


def test_known_and_repeated_ids_are_duplicates_and_the_rest_is_stored() -> None:
    """An id published before returns its stored deliveries; an id twice in the batch is one
    event; the new ones go in after the conflict, in one more append."""

    async def scenario() -> None:
        service, store = _service()
        await service.register_endpoint("acct_1", URL, ["event.tracked"])
        first = await service.publish("acct_1", NewEvent("event.tracked", TRACKED, id="evt_known"))
        store.appends.clear()
        ids = ["evt_known", "evt_new", "evt_new"]
        results = await service.publish_batch(
            "acct_1", [NewEvent("event.tracked", TRACKED, id=i) for i in ids]
        )
        assert [(r.event_id, r.duplicate) for r in results] == [
            ("evt_known", True),
            ("evt_new", False),
            ("evt_new", True),
        ]
        assert results[0].delivery_ids == first.delivery_ids
        assert results[2].delivery_ids == results[1].delivery_ids
        assert store.appends == [4, 2]  # refused (the known event's stream exists), then the new one

    asyncio.run(scenario())


def test_bad_events_are_refused_naming_the_event_and_nothing_is_stored() -> None:
    """A wrong id or type in a batch is a ValidationError naming ``events[i]``; the same id
    with other data is a DuplicateEventConflict; nothing of the batch is written."""

    async def scenario() -> None:
        service, store = _service()
        store.appends.clear()
        good = NewEvent("event.tracked", TRACKED, id="evt_ok")
        with pytest.raises(ValidationError) as bad_id:
            await service.publish_batch("acct_1", [good, NewEvent("event.tracked", TRACKED, id="nope")])
        assert bad_id.value.field == "events[1].id"
        with pytest.raises(ValidationError) as bad_type:
            await service.publish_batch("acct_1", [NewEvent("deal.closed", TRACKED), good])
        assert bad_type.value.field == "events[0].type"
        with pytest.raises(DuplicateEventConflict):
            await service.publish_batch(
                "acct_1", [good, NewEvent("event.tracked", {**TRACKED, "type": "demo"}, id="evt_ok")]
            )
        assert store.appends == []
        assert await service.publish_batch("acct_1", []) == []

    asyncio.run(scenario())


class FakeOutbox:
    """An ``Outbox`` over the memory store, as a caller's transaction that commits at once."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.woken = 0

    def subscribers(self, account_id: str, event_type: str) -> Sequence[EndpointView]:
        return asyncio.run(self.store.subscribers(account_id, event_type))

    def event(self, account_id: str, event_id: str) -> EventView | None:
        return asyncio.run(self.store.event(account_id, event_id))

    def delivery_ids(self, account_id: str, event_id: str) -> Sequence[str]:
        views = asyncio.run(self.store.deliveries(account_id, event_id=event_id))
        return [v.delivery.delivery_id for v in views]

    def append(self, *appends: StreamAppend) -> int:
        return asyncio.run(self.store.append(*appends))

    def deliveries_due(self) -> None:
        self.woken += 1


def test_publish_within_plans_as_publish_batch_and_wakes_only_for_new_deliveries() -> None:
    """Through the port: the same results as the async batch; the dispatchers are woken once
    per transaction with new deliveries, not for a batch of duplicates."""
    service, store = _service()
    asyncio.run(service.register_endpoint("acct_1", URL, ["event.tracked"]))
    outbox = FakeOutbox(store)
    events = [NewEvent("event.tracked", TRACKED, id=f"evt_w{i}") for i in range(2)]
    results = service.publish_within(outbox, "acct_1", events)
    assert [(r.event_id, len(r.delivery_ids), r.duplicate) for r in results] == [
        ("evt_w0", 1, False),
        ("evt_w1", 1, False),
    ]
    assert outbox.woken == 1
    again = service.publish_within(outbox, "acct_1", events)
    assert [r.duplicate for r in again] == [True, True]
    assert [r.delivery_ids for r in again] == [r.delivery_ids for r in results]
    assert outbox.woken == 1
