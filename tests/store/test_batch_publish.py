"""A batch publish on each SQL store: one transaction, idempotent per event across batches, and
nothing stored when any event of the batch conflicts."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from attribution_webhooks.adapters.sql import open_store
from attribution_webhooks.adapters.system import SystemRandom, UlidGenerator
from attribution_webhooks.app.services import (
    DuplicateEventConflict,
    NewEvent,
    ServiceSettings,
    WebhookService,
)
from attribution_webhooks.core.samples import SAMPLE_DATA
from attribution_webhooks.testing import FakeClock

ACCOUNT = "acct_batch"
DEAL = dict(SAMPLE_DATA["deal.attributed"])


def _deal(index: int, event_id: str | None = None) -> NewEvent:
    return NewEvent("deal.attributed", {**DEAL, "dealId": f"deal_{index}"}, event_id)


async def test_a_batch_is_one_transaction_and_repeats_are_stored_once(sql_url: str | URL) -> None:
    """A batch of 200 goes in one transaction; a second batch repeating half of it stores only the new half."""
    store = open_store(sql_url)
    try:
        service = WebhookService(store, FakeClock(), UlidGenerator(), SystemRandom(), ServiceSettings())
        for n in range(2):
            await service.register_endpoint(ACCOUNT, f"https://r{n}.example/h", ["deal.attributed"])
        before = store.append_stats.transactions
        first = await service.publish_batch(ACCOUNT, [_deal(i, f"evt_{i}") for i in range(200)])
        assert store.append_stats.transactions == before + 1
        assert all(len(r.delivery_ids) == 2 and not r.duplicate for r in first)
        second = await service.publish_batch(ACCOUNT, [_deal(i, f"evt_{i}") for i in range(100, 300)])
        assert [r.duplicate for r in second] == [True] * 100 + [False] * 100
        assert [r.delivery_ids for r in second[:100]] == [tuple(sorted(r.delivery_ids)) for r in first[100:]]
        assert len(await store.deliveries(ACCOUNT, limit=1000)) == 2 * 300
    finally:
        store.close()


async def test_a_conflict_anywhere_in_a_batch_stores_none_of_it(sql_url: str | URL) -> None:
    """An id published before with other data fails the batch; its other events are not stored."""
    store = open_store(sql_url)
    try:
        service = WebhookService(store, FakeClock(), UlidGenerator(), SystemRandom(), ServiceSettings())
        await service.register_endpoint(ACCOUNT, "https://r.example/h", ["deal.attributed"])
        await service.publish_batch(ACCOUNT, [_deal(0, "evt_taken")])
        size = len(await store.read_all(limit=10_000))
        with pytest.raises(DuplicateEventConflict, match="evt_taken"):
            await service.publish_batch(ACCOUNT, [_deal(1, "evt_new"), _deal(2, "evt_taken")])
        assert len(await store.read_all(limit=10_000)) == size
        assert await store.event(ACCOUNT, "evt_new") is None
    finally:
        store.close()
