"""A worker killed (SIGKILL) while it holds leases and writes: its deliveries complete after the
leases expire, and the log has no lost or half-written event."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import URL
from store_fixtures import ACCOUNT, endpoint, published, success

from attribution_webhooks.adapters.sql import SqlStore, open_store
from attribution_webhooks.adapters.sql.schema import READ_MODELS, events
from attribution_webhooks.core.delivery import DeliveryStatus

LEASE_SECONDS = 1.5
WORKER = Path(__file__).with_name("crash_worker.py")


def _now() -> datetime:
    return datetime.now(UTC)


def _rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        ordered = {table.name: select(table).order_by(*table.primary_key.columns) for table in READ_MODELS}
        return {name: [tuple(row) for row in conn.execute(query)] for name, query in ordered.items()}


def _kill_while_writing(url: str) -> None:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), url, str(LEASE_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "leased 40"
        assert worker.stdout.readline().strip() == "writing"
        time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert worker.returncode == -signal.SIGKILL


def test_killed_worker_strands_nothing_and_breaks_nothing(sql_url: str | URL) -> None:
    """After SIGKILL: leases hold until they expire, then every delivery completes; the log is whole."""
    url = sql_url if isinstance(sql_url, str) else sql_url.render_as_string(hide_password=False)
    ids = [f"dlv_{n:03d}" for n in range(40)]

    async def seed() -> None:
        store = open_store(url)
        try:
            await store.append(endpoint(_now()), *published("evt_0", ids, _now()))
        finally:
            store.close()

    asyncio.run(seed())
    killed_at = _now()
    _kill_while_writing(url)

    async def recover() -> None:
        store = open_store(url)
        try:
            assert list(await store.claim(_now(), 100, timedelta(seconds=30))) == []  # still leased
            expiry = await store.next_due()
            assert expiry is not None
            assert expiry <= killed_at + timedelta(seconds=LEASE_SECONDS + 10)
            await asyncio.sleep(max(0.0, (expiry - _now()).total_seconds()))
            due = await store.claim(_now(), 100, timedelta(seconds=30))
            assert sorted(d.delivery.delivery_id for d in due) == ids
            await store.append(*(success(d, _now()) for d in due))
            views = [await store.delivery(delivery_id) for delivery_id in ids]
            assert {v.delivery.status for v in views if v is not None} == {DeliveryStatus.SUCCEEDED}
            assert len(await store.deliveries(ACCOUNT, statuses=[DeliveryStatus.HELD], limit=10**6)) >= 400
        finally:
            store.close()

    asyncio.run(recover())

    store = open_store(url, inline=True)
    try:
        with store.engine.connect() as conn:
            log = conn.execute(select(events.c.position, events.c.stream_id, events.c.version)).all()
        positions = sorted(position for position, _, _ in log)
        assert positions == list(range(1, len(positions) + 1)), "no event lost or left half-written"
        versions: dict[str, list[int]] = defaultdict(list)
        for _, stream_id, version in sorted(log):
            versions[stream_id].append(version)
        assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
        assert len(asyncio.run(store.read_all(limit=10**6))) == len(log)  # every row decodes
        before = _rows(store)
        store.rebuild_read_models()
        assert _rows(store) == before, "the read models agree with the log"
    finally:
        store.close()
