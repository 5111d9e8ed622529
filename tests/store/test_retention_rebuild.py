"""After retention removed history, the log still rebuilds the read models (ADR 0018)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import URL
from store_workload import run_workload

from attribution_webhooks.adapters.sql import SqlStore, open_store, rebuild_read_models
from attribution_webhooks.adapters.sql.schema import READ_MODELS, purged_events

FAR = datetime(2100, 1, 1, tzinfo=UTC)


def _rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        ordered = {table.name: select(table).order_by(*table.primary_key.columns) for table in READ_MODELS}
        found = {name: [_kept(name, row) for row in conn.execute(query)] for name, query in ordered.items()}
        found["purged_events"] = [tuple(row) for row in conn.execute(select(purged_events))]
    return found


#: An endpoint's failing_since and its failures in a row come from attempts: those retention
#: removed no longer count when the log is replayed (ADR 0018).
_FROM_ATTEMPTS = {"endpoints": {"failing_since", "failures"}}


def _kept(table: str, row: Any) -> tuple[Any, ...]:
    left_out = _FROM_ATTEMPTS.get(table, set())
    return tuple(value for name, value in row._mapping.items() if name not in left_out)


def test_a_purged_log_rebuilds_the_same_rows(sql_url: str | URL) -> None:
    """Purge all finished history, then empty the read models and replay what is left of the log:
    every row comes back as it was, and the tombstones stay."""
    store = open_store(sql_url, inline=True)
    try:
        run_workload(store)
        before_purge = sum(len(rows) for rows in _rows(store).values())
        totals = 0
        after = None
        while True:
            report = asyncio.run(store.purge_events(FAR, FAR - timedelta(days=1), after, 7))
            totals += report.events
            after = report.cursor
            if after is None:
                break
        asyncio.run(store.purge_deleted(FAR - timedelta(days=3650), 100))
        before = _rows(store)
    finally:
        store.close()
    assert totals > 10
    assert before["purged_events"]
    assert sum(len(rows) for rows in before.values()) < before_purge
    assert rebuild_read_models(sql_url) > 0
    store = open_store(sql_url)
    try:
        assert _rows(store) == before
    finally:
        store.close()
