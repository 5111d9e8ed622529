"""Several worker processes claiming from one database at once: no delivery is held twice, none is left."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import URL
from store_fixtures import ACCOUNT, endpoint, published, success

from attribution_webhooks.adapters.sql import open_store
from attribution_webhooks.core.delivery import DeliveryStatus

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
# Enough that one process cannot finish them all before the others get the lock: on a loaded
# machine, 300 (about 75 small transactions) were once all claimed by the first process.
DELIVERIES = 1_200
WORKERS = 4
BATCH = 4


def _worker(url: str, start: Any) -> list[str]:
    """Claim small batches and record each as delivered until nothing is left; the ids it leased."""
    store = open_store(url, inline=True)
    leased: list[str] = []

    async def work() -> None:
        while True:
            batch = await store.claim(T0 + timedelta(minutes=1), BATCH, timedelta(hours=1))
            if not batch:
                return
            leased.extend(due.delivery.delivery_id for due in batch)
            await store.append(*(success(due, T0 + timedelta(minutes=1)) for due in batch))

    start.wait()  # every process starts claiming at once
    try:
        asyncio.run(work())
    finally:
        store.close()
    return leased


async def _seed(url: str | URL) -> list[str]:
    store = open_store(url)
    try:
        await store.append(endpoint(T0))
        ids = [f"dlv_{n:05d}" for n in range(DELIVERIES)]
        for chunk in range(0, DELIVERIES, 100):
            await store.append(*published(f"evt_{chunk}", ids[chunk : chunk + 100], T0))
        return ids
    finally:
        store.close()


def test_concurrent_workers_never_share_a_delivery_and_leave_none(sql_url: str | URL) -> None:
    """Four processes claim and record concurrently: each delivery is leased exactly once, all delivered."""
    url = sql_url if isinstance(sql_url, str) else sql_url.render_as_string(hide_password=False)
    ids = asyncio.run(_seed(url))
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
        start = manager.Barrier(WORKERS)
        results = list(pool.map(_worker, [url] * WORKERS, [start] * WORKERS))
    leased = Counter(delivery_id for result in results for delivery_id in result)
    assert [d for d, n in leased.items() if n > 1] == []
    assert sorted(leased) == ids
    assert sum(1 for result in results if result) > 1, "the work was shared"

    async def check() -> None:
        store = open_store(url)
        try:
            views = await store.deliveries(ACCOUNT, limit=DELIVERIES + 1)
            assert {v.delivery.status for v in views} == {DeliveryStatus.SUCCEEDED}
            assert {v.version for v in views} == {2}
            assert len(views) == DELIVERIES
            assert await store.next_due() is None
        finally:
            store.close()

    asyncio.run(check())
