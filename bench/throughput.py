"""Scenario 1, throughput: how fast our engine delivers a backlog, next to the limits and to Celery.

Each round measures, back to back against the same receiver: the three reference clients
(raw aiohttp, raw httpx, a bare asyncio client: the same signed 1 KB bodies at the same
concurrency, no storage); the Celery baseline (the same events as tasks); and our engine on
SQLite, on PostgreSQL with one worker process and with two. Our rounds start from the same
backlog: ``events`` events published once through the core API (``WebhookService.publish``,
each to one of 16 endpoints in turn) into a template database, copied for every round. A round's
figure is deliveries per second from the moment the worker is told to start until the last
delivery is recorded as succeeded in the store. Ratios are taken round by round.
"""

from __future__ import annotations

import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from attribution_webhooks.core.wire import encode_json, format_timestamp

from . import clients
from .engine import EVENT_TYPE, event_data
from .figures import ratio, spread
from .harness import Run
from .processes import LineProcess, wait_for

__all__ = ["LIMITS", "deliver_backlog", "publish_backlog", "recording", "run", "through_api"]

#: The reference clients: name in ``bench.clients`` → what the report calls it.
LIMITS = {"aiohttp": "raw aiohttp", "httpx": "raw httpx", "bare": "bare asyncio"}
PATH = "/s1"
API_PATH = "/s1api"


@contextmanager
def recording(run: Run) -> Iterator[list[tuple[float, str, str, int]]]:
    """The receiver keeps a record of each POST while inside; the list is filled on exit."""
    run.receiver.records()  # forget anything older
    run.receiver.control(record=True)
    found: list[tuple[float, str, str, int]] = []
    try:
        yield found
    finally:
        run.receiver.control(record=False)
        found.extend(run.receiver.records())


#: Issue 12's drain: the backlog is shared among this many endpoints (an account each).
ENDPOINTS = 16


def publish_backlog(
    run: Run, name: str, db: str, count: int, path: str = PATH, endpoints: int = 1
) -> dict[str, Any]:
    """Register ``endpoints`` endpoints (each in its own account) and publish ``count`` events
    through the core API, taking them in turn: one delivery per event."""
    engine = run.engine(name, db)
    urls = [f"{run.base_url}{path}/{n}" for n in range(endpoints)] if endpoints > 1 else [run.base_url + path]
    try:
        engine.call("register", urls=urls, spread=endpoints > 1)
        published = engine.call("publish", count=count, concurrency=16, timeout=1800)
    finally:
        engine.close()
    return {"events": count, "seconds": published["seconds"], "events_per_s": count / published["seconds"]}


def deliver_backlog(run: Run, name: str, db: str, count: int, workers: int = 1) -> dict[str, Any]:
    """Start ``workers`` engine processes on ``db`` (holding ``count`` due deliveries), tell them to
    go, and time them until ``count`` successes are recorded."""
    engines: list[LineProcess] = []
    try:
        for index in range(workers):
            engines.append(run.engine(f"{name}-{index}", db, per_endpoint=run.sizes.concurrency))
        before = run.receiver.stats()
        cpu = [engine.call("progress")["cpu_s"] for engine in engines]
        started = [engine.call("start")["started"] for engine in engines]
        if workers == 1:
            progress = [engines[0].call("wait", succeeded=count, within=600, timeout=630)]
        else:
            progress = _poll(engines, count)
        finals = [engine.call("stop", timeout=60) for engine in engines]
    finally:
        for engine in engines:
            engine.close()
    after = run.receiver.stats()
    succeeded = sum(p["succeeded"] for p in finals)
    if succeeded < count:
        raise RuntimeError(f"{name}: {succeeded} of {count} deliveries succeeded")
    first = min(started)
    last = max(p["last_success"] for p in progress if p["last_success"] is not None)
    seconds = last - first
    claims = [c for final in finals for c in final["claims_s"]]
    return {
        "deliveries_per_s": count / seconds,
        "seconds": seconds,
        "first_claim_after_s": min(p["first_claim"] for p in finals) - first,
        "cpu_per_wall": [
            (f["cpu_s"] - c) / (f["now"] - s) for f, c, s in zip(finals, cpu, started, strict=True)
        ],
        "peak_rss_mib": [round(f.get("peak_rss_kib", 0) / 1024, 1) for f in finals],
        "transactions": sum(f["stats"]["transactions"] for f in finals),
        "claim_ms_median": 1000 * statistics.median(claims) if claims else None,
        "requests": after["requests"] - before["requests"],
        "bad_signatures": after["bad_signature"] - before["bad_signature"],
    }


def _poll(engines: list[LineProcess], count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 600
    while True:
        progress = [engine.call("progress") for engine in engines]
        if sum(p["succeeded"] for p in progress) >= count or time.monotonic() > deadline:
            return progress
        time.sleep(0.01)


def through_api(run: Run, round_: int) -> dict[str, Any]:
    """``count`` events POSTed to ``/events`` of ``serve`` (API and dispatcher in one process, a
    fresh SQLite store, one subscribed endpoint) while it delivers them: deliveries per second
    from the first POST sent to the last delivery read by the receiver (``serve`` is not
    instrumented; every delivery is then checked as succeeded in the store)."""
    from . import api

    count = run.sizes.events
    name = f"s1-api-{round_}"
    db = run.sqlite.fresh(name)
    server = api.start_serve(run, name, db, per_endpoint=run.sizes.concurrency)
    try:
        api.register(server, run.base_url + API_PATH)
        before = run.receiver.stats()
        with recording(run) as records:
            posted = api.load(
                run,
                name,
                server.url + "/events",
                api.publish_body(),
                server.headers,
                concurrency=run.sizes.ingest_concurrency,
                count=count,
            )
            wait_for(
                lambda: (
                    run.receiver.stats()["paths"].get(API_PATH, 0) - before["paths"].get(API_PATH, 0) >= count
                ),
                timeout=120 + count / 100,
                interval=0.02,
                what=f"serve to deliver {count} events",
            )
    finally:
        run.supervisor.stop(server.process, grace=30)
    succeeded = _succeeded(db)
    run.sqlite.drop(name)
    if posted["statuses"] != {"202": count} or succeeded != count:
        raise RuntimeError(
            f"{name}: answers {posted['statuses']}, {succeeded} of {count} recorded as succeeded"
        )
    arrivals = sorted(t for t, path, _, status in records if path == API_PATH and status == 200)
    seconds = arrivals[-1] - posted["began"]
    return {
        "deliveries_per_s": count / seconds,
        "seconds": seconds,
        "post_events_per_s": count / (posted["ended"] - posted["began"]),
        "bad_signatures": run.receiver.stats()["bad_signature"] - before["bad_signature"],
    }


def _succeeded(db: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")).scalar()
            return int(found or 0)
    finally:
        engine.dispose()


def _limit(run: Run, client: str) -> dict[str, Any]:
    name = client if run.loop == "asyncio" else f"{client}+uvloop"
    before = run.receiver.stats()
    sizes = run.sizes
    result = clients.measure_in_subprocess(
        name, run.base_url + PATH, sizes.concurrency, sizes.limit_seconds, sizes.limit_warmup
    )
    if result.get("failure"):
        raise RuntimeError(f"{name} failed: {result['failure']}")
    after = run.receiver.stats()
    return {
        "deliveries_per_s": result["rps"],
        "requests": result["requests"],
        "errors": result["errors"],
        "bad_signatures": after["bad_signature"] - before["bad_signature"],
    }


def event_body(event_id: str) -> str:
    """The body our engine sends for an event (the same data, envelope and encoding)."""
    now = format_timestamp(datetime.now(UTC))
    return encode_json({"id": event_id, "type": EVENT_TYPE, "timestamp": now, "data": event_data()})


def _celery(run: Run, count: int, round_: int) -> dict[str, Any]:
    from . import celery_baseline

    assert run.redis_url is not None
    queue = f"bench-webhooks-{secrets.token_hex(4)}"
    tasks = []
    for index in range(count):
        event_id = f"evt_celery_{round_}_{index:06d}"
        tasks.append(
            {
                "url": run.base_url + "/celery",
                "secret": clients.SECRET,
                "event_id": event_id,
                "event_type": EVENT_TYPE,
                "delivery_id": f"dlv_celery_{round_}_{index:06d}",
                "body": event_body(event_id),
            }
        )
    env = {"BENCH_CELERY_BROKER": run.redis_url, "BENCH_CELERY_QUEUE": queue}
    before = run.receiver.stats()
    try:
        with recording(run) as records:
            enqueue_s = celery_baseline.enqueue(run.redis_url, queue, tasks)
            worker = run.supervisor.start(
                f"celery-{round_}", celery_baseline.worker_argv(sys.executable), env=env
            )
            try:
                wait_for(
                    lambda: run.receiver.stats()["requests"] - before["requests"] >= count,
                    timeout=120 + count / 50,
                    interval=0.05,
                    what=f"the Celery worker to deliver {count} tasks",
                )
            finally:
                run.supervisor.stop(worker)
    finally:
        _delete_queue(run.redis_url, queue)
    after = run.receiver.stats()
    times = sorted(t for t, path, _, status in records if path == "/celery" and status == 200)
    seconds = times[-1] - times[0]
    return {
        "deliveries_per_s": (len(times) - 1) / seconds,
        "seconds": seconds,
        "enqueue_per_s": count / enqueue_s,
        "requests": after["requests"] - before["requests"],
        "bad_signatures": after["bad_signature"] - before["bad_signature"],
    }


def _delete_queue(redis_url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        # The queue's list and kombu's two binding sets for it (its exchange has its name).
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    finally:
        client.close()


def run(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    count = sizes.events
    run.say(f"scenario 1 (throughput): publishing {count:,} events through the core API, SQLite")
    template = run.sqlite.fresh("s1_template")
    publish = {"sqlite": publish_backlog(run, "s1-publish-sqlite", template, count, endpoints=ENDPOINTS)}
    postgres = run.needs_postgres()
    if postgres is not None:
        run.say(f"scenario 1: publishing {count:,} events through the core API, PostgreSQL")
        publish["postgres"] = publish_backlog(
            run, "s1-publish-pg", postgres.fresh("s1_template"), count, endpoints=ENDPOINTS
        )

    measurements: dict[str, Callable[[int], dict[str, Any]]] = {}
    for client in LIMITS:
        measurements[client] = lambda _r, client=client: _limit(run, client)  # type: ignore[misc]
    if run.redis_url is not None:
        measurements["celery"] = lambda r: _celery(run, sizes.celery_events, r)

    def sqlite_round(r: int) -> dict[str, Any]:
        return deliver_backlog(run, f"s1-sqlite-{r}", run.sqlite.copy("s1_template", "s1_round"), count)

    measurements["ours_sqlite"] = sqlite_round
    measurements["ours_api_sqlite"] = lambda r: through_api(run, r)
    if postgres is not None:

        def postgres_round(workers: int) -> Callable[[int], dict[str, Any]]:
            def measure(r: int) -> dict[str, Any]:
                db = postgres.copy("s1_template", "s1_round")
                try:
                    return deliver_backlog(run, f"s1-pg{workers}-{r}", db, count, workers=workers)
                finally:
                    postgres.drop("s1_round")

            return measure

        measurements["ours_postgres_1"] = postgres_round(1)
        measurements["ours_postgres_2"] = postgres_round(2)

    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in measurements}
    for r in range(sizes.rounds):
        for name, measure in measurements.items():
            result = measure(r)
            rounds[name].append(result)
            run.say(f"scenario 1, round {r + 1}: {name} {result['deliveries_per_s']:,.0f}/s")
    rates = {name: [m["deliveries_per_s"] for m in results] for name, results in rounds.items()}
    figures = {name: spread(values) for name, values in rates.items()}
    references = [name for name in ("aiohttp", "httpx", "bare", "celery") if name in rates]
    ratios = {
        ours: {reference: ratio(rates[ours], rates[reference]) for reference in references}
        for ours in rates
        if ours.startswith("ours")
    }
    return {
        "settings": {
            "events": count,
            "celery_events": sizes.celery_events,
            "concurrency": sizes.concurrency,
            "per_endpoint_concurrency": sizes.concurrency,
            "endpoints": ENDPOINTS,
            "claim_batch": 128,
            "loop": run.loop,
            "limit_seconds": sizes.limit_seconds,
            "limit_warmup": sizes.limit_warmup,
            "body_bytes": len(clients.signed_request()[0]),
        },
        "publish_core_api": publish,
        "deliveries_per_s": figures,
        "ratios": ratios,
        "rounds": rounds,
    }
