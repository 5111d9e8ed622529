"""Store benchmark (not a test): append throughput and claim latency, on SQLite and PostgreSQL.

    .venv/bin/python bench/store_bench.py                      # SQLite file in a temp folder
    .venv/bin/python bench/store_bench.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

Appends: events per second, one event per transaction vs batches of 100 and 1,000 events per
append (group commit), for the two hot kinds: scheduling deliveries (new streams, new rows) and
recording attempt outcomes (existing streams: delivery row updated, attempt row added).
Concurrent publishes: 64 coroutines each appending published events (the event and one delivery
per append, a 1 KB body) one at a time, as API requests do; the store merges the appends in
flight into shared transactions. Publishes per second, and how many appends a transaction held.
Claims: time to lease 100 rows with 10 thousand, then 1 million, due rows in the table, next to
1 million finished ones (filled with plain SQL: the claim only sees the table, not how it got there).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from attribution_webhooks.adapters.sql import SqlStore, open_store, upgrade
from attribution_webhooks.core.events import (
    AttemptSucceeded,
    DeliveryScheduled,
    EndpointRegistered,
    EventPublished,
    event_stream,
)
from attribution_webhooks.core.ports import StreamAppend

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
ACCOUNT = "acct_1"


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"


@contextmanager
def postgres_url(admin: str) -> Iterator[str]:
    name = f"aw_bench_{secrets.token_hex(4)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


# --- appends ----------------------------------------------------------------------------------------


async def _append_rate(store: SqlStore, tag: str, events: int, batch: int) -> tuple[float, float]:
    """Events/s scheduling ``events`` deliveries, then recording their outcomes, ``batch`` per append."""
    await store.append(
        StreamAppend(
            event_stream(ACCOUNT, tag), 0, (EventPublished(tag, ACCOUNT, "deal.attributed", "{}", T0, T0),)
        )
    )
    ids = [f"dlv_{tag}_{n:07d}" for n in range(events)]
    started = time.perf_counter()
    for chunk in range(0, events, batch):
        await store.append(
            *(
                StreamAppend(d, 0, (DeliveryScheduled(d, ACCOUNT, "wh_1", tag, "deal.attributed", T0),))
                for d in ids[chunk : chunk + batch]
            )
        )
    scheduled = events / (time.perf_counter() - started)
    started = time.perf_counter()
    for chunk in range(0, events, batch):
        await store.append(
            *(
                StreamAppend(d, 1, (AttemptSucceeded(d, "wh_1", 1, T0, 12.0, 200, "OK"),))
                for d in ids[chunk : chunk + batch]
            )
        )
    recorded = events / (time.perf_counter() - started)
    return scheduled, recorded


_REGISTERED = EndpointRegistered(
    "wh_1", ACCOUNT, "https://example.com", ("deal.attributed",), "s3cret-s3cret-XYZ", "", False, T0
)


async def _register(url: str) -> None:
    store = open_store(url, inline=True)
    await store.append(StreamAppend("wh_1", 0, (_REGISTERED,)))
    store.close()


async def appends(url: str) -> None:
    store = open_store(url, inline=True)
    await store.append(StreamAppend("wh_1", 0, (_REGISTERED,)))
    for batch, events in ((1, 3_000), (100, 30_000), (1_000, 30_000)):
        scheduled, recorded = await _append_rate(store, f"b{batch}", events, batch)
        print(
            f"  append, {batch:>5} event(s)/transaction: {scheduled:>9,.0f} scheduled/s"
            f"  {recorded:>9,.0f} outcomes/s  ({events:,} each)"
        )
    store.close()


# --- concurrent publishes ---------------------------------------------------------------------------

_BODY = '{"id":"evt_x","type":"deal.attributed","data":{"note":"' + "x" * 960 + '"}}'


def _published(n: int) -> tuple[StreamAppend, StreamAppend]:
    event_id, delivery_id = f"evt_c{n:08d}", f"dlv_c{n:08d}"
    published = EventPublished(event_id, ACCOUNT, "deal.attributed", _BODY, T0, T0)
    scheduled = DeliveryScheduled(delivery_id, ACCOUNT, "wh_1", event_id, "deal.attributed", T0)
    return (
        StreamAppend(event_stream(ACCOUNT, event_id), 0, (published,)),
        StreamAppend(delivery_id, 0, (scheduled,)),
    )


async def concurrent_publishes(url: str, publishers: int = 64, each: int = 100) -> None:
    store = open_store(url)  # threaded, as a service runs it: appends in flight are merged
    try:
        for rounds, label in ((1, "sequential"), (publishers, f"{publishers} publishers")):
            count = each * publishers
            first = store.append_stats.transactions, store.append_stats.calls
            started = time.perf_counter()

            async def publisher(lane: int, rounds: int = rounds, count: int = count) -> None:
                for n in range(lane, count, rounds):
                    await store.append(*_published(n + (0 if rounds > 1 else 10**7)))

            await asyncio.gather(*(publisher(lane) for lane in range(rounds)))
            elapsed = time.perf_counter() - started
            transactions = store.append_stats.transactions - first[0]
            calls = store.append_stats.calls - first[1]
            print(
                f"  publishes, {label:>15}: {count / elapsed:>9,.0f}/s"
                f"  ({calls / transactions:.1f} appends per transaction, {count:,} publishes)"
            )
    finally:
        store.close()


# --- claims -----------------------------------------------------------------------------------------


def _fill(store: SqlStore, first: int, count: int, due: bool, parked: bool = False) -> None:
    """Insert ``count`` deliveries of one published event: due now, or finished (not queued);
    ``parked``: pending in an ordered endpoint's line behind its head (ADR 0016), so not queued."""
    sqlite = store.engine.dialect.name == "sqlite"
    t = "'2024-01-20 15:00:00.000000'" if sqlite else "TIMESTAMPTZ '2024-01-20 15:00:00+00'"
    queue_at, status = (t, "'scheduled'") if due else ("NULL", "'succeeded'")
    endpoint, line = "'wh_1'", "NULL"
    if parked:
        queue_at, status, endpoint, line = "NULL", "'scheduled'", "'wh_ordered'", "i"
    columns = (
        "delivery_id, account_id, endpoint_id, event_id, event_type, status, test, attempts, due_at,"
        " version, created_at, updated_at, queue_at, line_position"
    )
    if sqlite:
        ids = "WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
        select = (
            f"SELECT printf('dlv_%010d', i), 'acct_1', {endpoint}, 'evt_1', 'deal.attributed',"
            f" {status}, 0, 0, "
        )
        source = " FROM n"
    else:
        ids = ""
        select = (
            f"SELECT 'dlv_' || lpad(i::text, 10, '0'), 'acct_1', {endpoint}, 'evt_1', 'deal.attributed',"
            f" {status}, false, 0, "
        )
        source = " FROM generate_series(:first, :last) AS i"
    sql = (
        f"{ids}INSERT INTO deliveries ({columns}) {select}{queue_at}, 1, {t}, {t}, {queue_at}, {line}{source}"
    )
    with store.engine.begin() as conn:
        conn.execute(text(sql), {"first": first, "last": first + count - 1})
    if not sqlite:
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE deliveries"))


async def _claim_ms(store: SqlStore, rounds: int = 20) -> float:
    timings = []
    now = T0 + timedelta(hours=1)
    for _ in range(rounds):
        started = time.perf_counter()
        leased = await store.claim(now, 100, timedelta(minutes=5))
        timings.append((time.perf_counter() - started) * 1000)
        assert len(leased) == 100
    return statistics.median(timings)


async def claims(url: str, finished: int, parked: int = 0) -> None:
    store = open_store(url, inline=True)
    await store.append(
        StreamAppend(
            event_stream(ACCOUNT, "evt_1"),
            0,
            (EventPublished("evt_1", ACCOUNT, "deal.attributed", "{}", T0, T0),),
        )
    )
    started = time.perf_counter()
    _fill(store, 1, finished, due=False)
    if parked:
        _fill(store, 3_000_001, parked, due=False, parked=True)
        print(f"  filled {parked:,} deliveries parked in an ordered endpoint's line")
    _fill(store, finished + 1, 10_000, due=True)
    print(f"  filled {finished:,} finished + 10,000 due rows in {time.perf_counter() - started:.1f} s")
    print(f"  claim 100 of    10,000 due (+{finished:,} finished): {await _claim_ms(store):7.2f} ms (median)")
    started = time.perf_counter()
    _fill(store, finished + 10_001, 990_000, due=True)
    print(f"  filled 990,000 more due rows in {time.perf_counter() - started:.1f} s")
    print(f"  claim 100 of 1,000,000 due (+{finished:,} finished): {await _claim_ms(store):7.2f} ms (median)")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", help="an admin URL; a scratch database is created and dropped")
    parser.add_argument("--finished", type=int, default=1_000_000, help="finished rows next to the queue")
    parser.add_argument("--skip-claims", action="store_true")
    parser.add_argument("--claims-only", action="store_true", help="only the claim measurements")
    parser.add_argument(
        "--parked",
        type=int,
        default=0,
        help="deliveries parked in an ordered line beside the queue (ADR 0016)",
    )
    options = parser.parse_args()
    backends = [("SQLite (file, WAL, synchronous=NORMAL)", sqlite_url)]
    if options.postgres:
        admin = options.postgres
        backends.append(("PostgreSQL", lambda: postgres_url(admin)))
    for name, make in backends:
        print(name)
        if not options.claims_only:
            with make() as url:
                asyncio.run(appends(url))
            with make() as url:
                asyncio.run(_register(url))
                asyncio.run(concurrent_publishes(url))
        if not options.skip_claims:
            with make() as url:
                asyncio.run(claims(url, options.finished, options.parked))


if __name__ == "__main__":
    main()
