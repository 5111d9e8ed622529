"""Retention on a large SQLite log: how long one purge transaction holds the single writer, and
what appends see meanwhile (ADR 0018).

    python -m bench.retention --events 333334      # about 1 M rows in ``events``

It fills a fresh SQLite file with ``--events`` published events 40 days old, each with one
delivery that succeeded at its first attempt (three log events, a published row, a delivery row
and an attempt row each), plus one recent event. Then it runs the retention task (30 days,
``--batch`` events a transaction, ``--pause`` between) on the store's own thread while a
publisher appends an event every 5 ms, and reports the purge transactions' durations and the
appends' latencies (median, p99, max), before and during the purge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from attribution_webhooks.adapters.sql import SqlStore, open_store
from attribution_webhooks.adapters.system import SystemClock
from attribution_webhooks.app.worker.retention import Retention
from attribution_webhooks.core.events import (
    AttemptSucceeded,
    DeliveryScheduled,
    EndpointRegistered,
    EventPublished,
    event_stream,
)
from attribution_webhooks.core.ports import StreamAppend
from attribution_webhooks.core.retention import PurgeReport, RetentionPolicy

ACCOUNT = "acct_bench"
BODY = json.dumps({"id": "x", "type": "deal.attributed", "data": {"dealId": "d", "amount": 1200}})


def _fill(url: str, events: int, chunk: int = 1000) -> None:
    store = open_store(url, inline=True)
    old = datetime.now(UTC) - timedelta(days=40)
    try:
        registered = EndpointRegistered(
            "wh_bench", ACCOUNT, "https://receiver.example/", ("deal.attributed",), "s" * 24, "", False, old
        )
        asyncio.run(store.append(StreamAppend("wh_bench", 0, (registered,))))
        for start in range(0, events, chunk):
            appends = []
            for n in range(start, min(events, start + chunk)):
                event_id, delivery_id = f"evt_{n:08d}", f"dlv_{n:08d}"
                at = old + timedelta(milliseconds=n)
                appends.append(
                    StreamAppend(
                        event_stream(ACCOUNT, event_id),
                        0,
                        (EventPublished(event_id, ACCOUNT, "deal.attributed", BODY, at, at),),
                    )
                )
                scheduled = DeliveryScheduled(
                    delivery_id, ACCOUNT, "wh_bench", event_id, "deal.attributed", at
                )
                succeeded = AttemptSucceeded(delivery_id, "wh_bench", 1, at, 12.0, 200, "ok")
                appends.append(StreamAppend(delivery_id, 0, (scheduled, succeeded)))
            asyncio.run(store.append(*appends))
    finally:
        store.close()


class _Timed:
    """The store's History port, timing each purge call (its transaction, and any wait for the
    store's thread)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.purges: list[float] = []

    async def purge_events(
        self, horizon: datetime, now: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> PurgeReport:
        started = time.perf_counter()
        report = await self.store.purge_events(horizon, now, after, limit)
        self.purges.append(time.perf_counter() - started)
        return report

    async def purge_deleted(self, horizon: datetime, limit: int) -> PurgeReport:
        return await self.store.purge_deleted(horizon, limit)

    async def purged_event(self, account_id: str, event_id: str) -> tuple[datetime, datetime] | None:
        return await self.store.purged_event(account_id, event_id)


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "count": len(values),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1 if len(ordered) > 1 else 0] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def _measure(url: str, batch: int, pause: float, baseline: float) -> dict[str, Any]:
    store = open_store(url)
    timed = _Timed(store)
    policy = RetentionPolicy(batch=batch, pause=timedelta(seconds=pause))
    retention = Retention(timed, SystemClock(), policy)  # type: ignore[arg-type]  # duck-typed History
    appends: dict[str, list[float]] = {"before": [], "during": []}
    phase = "before"
    stop = asyncio.Event()

    async def publisher() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            event_id = f"evt_live_{n:08d}"
            now = datetime.now(UTC)
            published = EventPublished(event_id, ACCOUNT, "deal.attributed", BODY, now, now)
            started = time.perf_counter()
            await store.append(StreamAppend(event_stream(ACCOUNT, event_id), 0, (published,)))
            appends[phase].append(time.perf_counter() - started)
            await asyncio.sleep(0.005)

    try:
        running = asyncio.ensure_future(publisher())
        await asyncio.sleep(baseline)
        phase = "during"
        started = time.perf_counter()
        await retention.run_pass()
        elapsed = time.perf_counter() - started
        stop.set()
        await running
    finally:
        store.close()
    stats = retention.stats
    return {
        "batch": batch,
        "pause_s": pause,
        "purged_events": stats.events,
        "purged_deliveries": stats.deliveries,
        "purged_attempts": stats.attempts,
        "pass_seconds": round(elapsed, 1),
        "purge_transactions": _summary(timed.purges),
        "appends_before": _summary(appends["before"]),
        "appends_during": _summary(appends["during"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=333_334, help="old published events (3 log rows each)")
    parser.add_argument("--batch", type=int, default=RetentionPolicy().batch)
    parser.add_argument("--pause", type=float, default=RetentionPolicy().pause.total_seconds())
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of appends before purging")
    parser.add_argument("--database", type=Path, help="reuse (or create) this SQLite file")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    path = args.database or directory / "retention.sqlite3"
    url = f"sqlite:///{path}"
    if not path.exists():
        started = time.perf_counter()
        _fill(url, args.events)
        print(f"filled {args.events} events in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    result = asyncio.run(_measure(url, args.batch, args.pause, args.baseline))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
