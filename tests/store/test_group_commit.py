"""Group commit: appends in flight together share one transaction, and each keeps its own outcome.

The port's side of this (every call commits or conflicts alone) is in the contract suite; these
tests check what only the SQL store does: the merging itself, and the isolation of a call that
fails on its own data inside a merged transaction.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from store_fixtures import ACCOUNT, endpoint, published

from attribution_webhooks.adapters.sql import open_store
from attribution_webhooks.adapters.sql.schema import deliveries
from attribution_webhooks.core.errors import ConcurrencyConflict
from attribution_webhooks.core.events import EventPublished, event_stream
from attribution_webhooks.core.ports import StreamAppend

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)


async def test_appends_in_flight_together_share_one_transaction(sql_url: str | URL) -> None:
    """Sixty-four publishes started together are written in far fewer transactions than calls;
    a lone append is its own transaction, at once."""
    store = open_store(sql_url)
    try:
        await store.append(endpoint(T0))
        assert (store.append_stats.calls, store.append_stats.transactions) == (1, 1)
        await asyncio.gather(*(store.append(*published(f"evt_{n}", [f"dlv_{n}"], T0)) for n in range(64)))
        stats = store.append_stats
        assert stats.calls == 65
        assert stats.transactions <= 1 + 64 // 4, "concurrent appends were merged"
        assert len(await store.deliveries(ACCOUNT, limit=100)) == 64
        assert [r.position for r in await store.read_all(limit=1000)] == list(range(1, 1 + 1 + 128))
    finally:
        store.close()


async def test_a_call_with_bad_data_fails_alone_in_a_merged_transaction(sql_url: str | URL) -> None:
    """A naive datetime, or a row that clashes with the read models, fails only the call that
    carries it; the calls merged with it are written."""
    store = open_store(sql_url)
    try:
        await store.append(endpoint(T0))
        # A deliveries row that no stream explains: scheduling that delivery cannot be projected.
        with store.engine.begin() as conn:
            conn.execute(
                insert(deliveries),
                {
                    "delivery_id": "dlv_clash",
                    "account_id": ACCOUNT,
                    "endpoint_id": "wh_1",
                    "event_id": "evt_x",
                    "event_type": "deal.attributed",
                    "status": "succeeded",
                    "test": False,
                    "attempts": 1,
                    "version": 2,
                    "created_at": T0,
                    "updated_at": T0,
                },
            )
        naive = EventPublished("evt_naive", ACCOUNT, "deal.attributed", "{}", T0, datetime(2024, 1, 20))  # noqa: DTZ001
        results = await asyncio.gather(
            *(store.append(*published(f"evt_{n}", [f"dlv_{n}"], T0)) for n in range(5)),
            store.append(*published("evt_clash", ["dlv_clash"], T0)),
            store.append(StreamAppend(event_stream(ACCOUNT, "evt_naive"), 0, (naive,))),
            *(store.append(*published(f"evt_{n}", [f"dlv_{n}"], T0)) for n in range(5, 10)),
            return_exceptions=True,
        )
        clash, bad_time = results[5], results[6]
        assert isinstance(clash, ConcurrencyConflict)
        assert isinstance(clash.__cause__, IntegrityError)
        assert set(clash.streams) == {event_stream(ACCOUNT, "evt_clash"), "dlv_clash"}
        assert isinstance(bad_time, ValueError)
        assert "naive" in str(bad_time)
        written = [r for r in results if isinstance(r, int)]
        assert len(written) == 10
        assert written == sorted(written)
        assert list(await store.read(event_stream(ACCOUNT, "evt_clash"))) == []
        assert await store.event(ACCOUNT, "evt_clash") is None
        views = await store.deliveries(ACCOUNT, limit=100)
        assert sorted(v.delivery.delivery_id for v in views) == sorted(
            ["dlv_clash", *(f"dlv_{n}" for n in range(10))]
        )
        positions = [r.position for r in await store.read_all(limit=1000)]
        assert positions == list(range(1, len(positions) + 1)), "gapless despite the retries"
    finally:
        store.close()


def test_an_inline_store_appends_without_a_thread(sqlite_url: str) -> None:
    """Inline (the simulation's mode), an append runs on the caller's thread, one transaction each."""
    store = open_store(sqlite_url, inline=True)
    try:

        async def work() -> None:
            await store.append(endpoint(T0))
            await asyncio.gather(*(store.append(*published(f"evt_{n}", [f"dlv_{n}"], T0)) for n in range(3)))
            with pytest.raises(ConcurrencyConflict):
                await store.append(*published("evt_0", ["dlv_9"], T0))

        asyncio.run(work())
        assert (store.append_stats.calls, store.append_stats.transactions) == (4, 4)
        assert asyncio.run(store.next_due()) == T0
        leased = asyncio.run(store.claim(T0 + timedelta(seconds=1), 10, timedelta(seconds=30)))
        assert sorted(d.delivery.delivery_id for d in leased) == ["dlv_0", "dlv_1", "dlv_2"]
    finally:
        store.close()
