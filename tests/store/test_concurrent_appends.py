"""Appends from several processes at once: no read-model update is lost, and a reader following the
log by position never passes an event that commits later (ADR 0004: what the append lock guarantees,
and what any change to it must keep)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import URL
from store_fixtures import ENDPOINT, endpoint, published

from attribution_webhooks.adapters.sql import SqlStore, open_store, rebuild_read_models
from attribution_webhooks.adapters.sql.schema import READ_MODELS
from attribution_webhooks.core.events import AttemptFailed
from attribution_webhooks.core.ports import StreamAppend

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
DELIVERIES = 160
WRITERS = 2
IN_FLIGHT = 4  # appends each writer keeps in flight: some transactions carry several


def _outcome(index: int, delivery_id: str) -> StreamAppend:
    """A failed attempt: each one changes the endpoint's health (failures in a row, and since when),
    a row that both writers update. (A success would reset the count and hide a lost update.)"""
    at = T0 + timedelta(seconds=index)
    event = AttemptFailed(delivery_id, ENDPOINT, 1, at, 1.0, 500, None, "", "")
    return StreamAppend(delivery_id, 1, (event,))


def _writer(url: str, indexes: list[int], start: Any) -> int:
    """Record an outcome for each delivery of ``indexes``, ``IN_FLIGHT`` appends at a time."""
    store = open_store(url, inline=True)

    async def work() -> None:
        for first in range(0, len(indexes), IN_FLIGHT):
            chunk = indexes[first : first + IN_FLIGHT]
            await asyncio.gather(*(store.append(_outcome(n, f"dlv_{n:05d}")) for n in chunk))

    start.wait()
    try:
        asyncio.run(work())
    finally:
        store.close()
    return len(indexes)


def _rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        ordered = {table.name: select(table).order_by(*table.primary_key.columns) for table in READ_MODELS}
        return {name: [tuple(row) for row in conn.execute(query)] for name, query in ordered.items()}


async def _seed(store: SqlStore) -> int:
    await store.append(endpoint(T0))
    ids = [f"dlv_{n:05d}" for n in range(DELIVERIES)]
    for chunk in range(0, DELIVERIES, 40):
        await store.append(*published(f"evt_{chunk}", ids[chunk : chunk + 40], T0))
    return len(await store.read_all(0, 100_000))


async def _follow(store: SqlStore, expected: int) -> list[int]:
    """Page through ``read_all`` as a subscriber would, from the last position seen, while the
    writers append; the positions seen, in order."""
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while len(seen) < expected and time.monotonic() < deadline:
        page = await store.read_all(seen[-1] if seen else 0, 7)
        seen += [event.position for event in page]
        if not page:
            await asyncio.sleep(0.001)
    return seen


def test_concurrent_appenders_lose_no_update_and_a_follower_misses_no_event(sql_url: str | URL) -> None:
    """Two processes record outcomes on one endpoint at once: the read models equal a rebuild from
    the log (the endpoint's health included), and a reader following positions sees every event once."""
    url = sql_url if isinstance(sql_url, str) else sql_url.render_as_string(hide_password=False)
    store = open_store(url)
    try:
        seeded = asyncio.run(_seed(store))
        expected = seeded + DELIVERIES
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, ProcessPoolExecutor(WRITERS, mp_context=context) as pool:
            start = manager.Event()
            shares = [list(range(w, DELIVERIES, WRITERS)) for w in range(WRITERS)]
            futures = [pool.submit(_writer, url, share, start) for share in shares]
            start.set()
            seen = asyncio.run(_follow(store, expected))
            assert sum(f.result(timeout=120) for f in futures) == DELIVERIES
        everything = [event.position for event in asyncio.run(store.read_all(0, 100_000))]
        assert len(everything) == expected
        assert seen == everything  # in order, none skipped, none twice
        before = _rows(store)
        health = asyncio.run(store.endpoint(ENDPOINT))
        assert health is not None
        assert health.failures == DELIVERIES  # every failure counted, none lost
    finally:
        store.close()
    assert rebuild_read_models(url) == expected
    rebuilt = open_store(url)
    try:
        assert _rows(rebuilt) == before
    finally:
        rebuilt.close()
