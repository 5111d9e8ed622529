"""Read models are derived data: a rebuild from the log gives the same rows, and a restart keeps them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import URL
from store_workload import ACCOUNT, run_workload

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.adapters.sql import SqlStore, open_store, rebuild_read_models
from attribution_webhooks.adapters.sql.schema import READ_MODELS
from attribution_webhooks.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    DeliveryScheduled,
    EndpointRegistered,
    EventPublished,
    RetryScheduled,
    event_stream,
)
from attribution_webhooks.core.ports import Storage, StreamAppend


def _rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        ordered = {table.name: select(table).order_by(*table.primary_key.columns) for table in READ_MODELS}
        return {name: [tuple(row) for row in conn.execute(query)] for name, query in ordered.items()}


async def _log_views(store: Storage) -> list[Any]:
    """What the API would show: every delivery with its attempts, every endpoint, every event."""
    found: list[Any] = []
    for account in (ACCOUNT, "acct_2"):
        views = await store.deliveries(account, limit=10_000)
        found += [(view, list(await store.attempts(view.delivery.delivery_id))) for view in views]
        found += list(await store.list_endpoints(account))
        for view in views:
            found.append(await store.event(account, view.delivery.event_id))
    return found


def test_rebuild_gives_the_same_rows(sql_url: str | URL) -> None:
    """After a workload, emptying the read models and replaying the log reproduces every row."""
    store = open_store(sql_url, inline=True)
    try:
        run_workload(store)
        before = _rows(store)
    finally:
        store.close()
    assert before["attempts"], "the workload records attempts"
    assert any(row[4] is not None for row in before["endpoints"]), "and leaves an endpoint failing"
    assert rebuild_read_models(sql_url) > 0
    store = open_store(sql_url)
    try:
        assert _rows(store) == before
    finally:
        store.close()


def test_the_sql_store_ends_where_the_reference_store_does(sqlite_url: str) -> None:
    """One seeded workload over SQLite (inline, on virtual time) and over memory: same log, same views."""
    memory = MemoryStore()
    run_workload(memory)
    store = open_store(sqlite_url, inline=True)
    try:
        run_workload(store)
        sql_views = asyncio.run(_log_views(store))
        sql_events = [r.event for r in asyncio.run(store.read_all(limit=1_000_000))]
    finally:
        store.close()
    assert sql_events == memory.all_events()
    assert sql_views == asyncio.run(_log_views(memory))
    statuses = {view.delivery.status for view, _ in (v for v in sql_views if isinstance(v, tuple))}
    assert len(statuses) >= 3  # succeeded, failed, cancelled at least
    reopened = open_store(sqlite_url)
    try:
        assert asyncio.run(_log_views(reopened)) == sql_views
    finally:
        reopened.close()


def test_rebuild_gives_the_same_lines(sql_url: str | URL) -> None:
    """Mid-line (a retrying head, two parked deliveries behind it, one already through), a rebuild
    gives every row its place in line and its queue time again (ADR 0016)."""
    t0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
    store = open_store(sql_url, inline=True)
    try:
        registered = EndpointRegistered(
            "wh_o",
            ACCOUNT,
            "https://example.com/o",
            ("deal.attributed",),
            "s3cret-s3cret-XYZ",
            "",
            False,
            t0,
            True,
        )
        appends = [StreamAppend("wh_o", 0, (registered,))]
        for n in range(4):
            body = f'{{"id":"evt_{n}"}}'
            published = EventPublished(f"evt_{n}", ACCOUNT, "deal.attributed", body, t0, t0)
            scheduled = DeliveryScheduled(
                f"dlv_{n}", ACCOUNT, "wh_o", f"evt_{n}", "deal.attributed", t0, ordered=True
            )
            appends += [
                StreamAppend(event_stream(ACCOUNT, f"evt_{n}"), 0, (published,)),
                StreamAppend(f"dlv_{n}", 0, (scheduled,)),
            ]
        asyncio.run(store.append(*appends))
        done = AttemptSucceeded("dlv_0", "wh_o", 1, t0, 5.0, 200, "OK")
        asyncio.run(store.append(StreamAppend("dlv_0", 1, (done,))))
        failed = AttemptFailed("dlv_1", "wh_o", 1, t0, 5.0, 500, None, "HTTP 500", "")
        retry = RetryScheduled("dlv_1", 2, t0 + timedelta(minutes=1), t0)
        asyncio.run(store.append(StreamAppend("dlv_1", 1, (failed, retry))))
        before = _rows(store)
    finally:
        store.close()
    lines = {row[0]: (row[-1], row[-4]) for row in before["deliveries"]}  # line_position, queue_at
    assert [lines[f"dlv_{n}"][0] is not None for n in range(4)] == [False, True, True, True]
    assert [lines[f"dlv_{n}"][1] is not None for n in range(4)] == [False, True, False, False]
    assert rebuild_read_models(sql_url) > 0
    store = open_store(sql_url)
    try:
        assert _rows(store) == before
    finally:
        store.close()
