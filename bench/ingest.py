"""Scenario 6, API ingest: ``POST /events`` requests per second with durable storage, next to a
Litestar hello world on the same server settings.

Each round starts, measures and stops, one after the other: the hello world (``bench.hello``:
the body decoded into a dict, nothing stored); ``serve`` on a fresh SQLite store for an account
with no webhook (the event is validated, stored and answered: pure ingest); ``serve`` with one
webhook subscribed (each event also schedules a delivery, which the same process then makes);
and, when PostgreSQL is there, ``serve`` on PostgreSQL with no webhook. The load is
``bench.load`` (bare asyncio, ``ingest_concurrency`` connections) sending the same 1 KB event.
Ratios to the hello world are taken round by round.

Batch ingest (``batch_sqlite``, last in each round): ``serve`` on a fresh SQLite store with
``BATCH_ENDPOINTS`` webhooks subscribed, ``POST /events/batch`` with ``BATCH_SIZE`` of the same
events per request over ``BATCH_CONNECTIONS`` connections, a fixed number of requests after a
warm-up; events accepted per second from the first request sent to the last answered, and their
ratio to the hello world's requests per second (which the shared machine's load moves less than
the absolute figure). The webhooks are disabled, so each event's deliveries are created and
stored (held) exactly as for an enabled webhook, but the same process does not also send them:
the figure is ingest alone, as for the other servers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import api
from .figures import ratio, spread
from .harness import Run

__all__ = ["BATCH_CONNECTIONS", "BATCH_ENDPOINTS", "BATCH_SIZE", "run"]

BATCH_SIZE = 1_000
BATCH_ENDPOINTS = 3
BATCH_CONNECTIONS = 4


def _measure(run: Run, server: api.Server, name: str) -> dict[str, Any]:
    sizes = run.sizes
    result = api.load(
        run,
        name,
        server.url + "/events",
        api.publish_body(),
        server.headers,
        concurrency=sizes.ingest_concurrency,
        duration=sizes.ingest_seconds,
        warmup=sizes.ingest_warmup,
    )
    if result["errors"] or result["rps"] <= 0:
        raise RuntimeError(f"{name}: {result['statuses']}")
    return {"requests_per_s": result["rps"], "requests": result["requests"], "statuses": result["statuses"]}


def _hello(run: Run, r: int) -> dict[str, Any]:
    server = api.start_hello(run, f"s6-hello-{r}")
    try:
        return _measure(run, server, f"s6-hello-{r}")
    finally:
        run.supervisor.stop(server.process)


def _serve(run: Run, r: int, backend: str, subscribed: bool) -> dict[str, Any]:
    name = f"s6-{backend}-{'sub' if subscribed else 'nosub'}-{r}"
    if backend == "sqlite":
        db = run.sqlite.fresh(name)
    else:
        assert run.postgres is not None
        db = run.postgres.fresh(name)
    server = api.start_serve(run, name, db)
    try:
        if subscribed:
            api.register(server, run.base_url + "/s6")
        return _measure(run, server, name)
    finally:
        run.supervisor.stop(server.process, grace=30)
        if backend == "sqlite":
            run.sqlite.drop(name)
        else:
            assert run.postgres is not None
            run.postgres.drop(name)


def _batch(run: Run, r: int) -> dict[str, Any]:
    name = f"s6-batch-{r}"
    db = run.sqlite.fresh(name)
    server = api.start_serve(run, name, db)
    try:
        for n in range(BATCH_ENDPOINTS):
            api.disable(server, api.register(server, f"{run.base_url}/s6-batch-{n}"))
        body = api.batch_body(BATCH_SIZE)
        url = server.url + "/events/batch"
        # Counted, not timed: a batch takes longer than the quick run's whole window. A warm-up
        # of one batch per connection first (the first requests pay for imports and caches).
        api.load(run, name, url, body, server.headers, concurrency=BATCH_CONNECTIONS, count=BATCH_CONNECTIONS)
        requests = BATCH_CONNECTIONS * (2 if run.quick else 10)
        result = api.load(run, name, url, body, server.headers, concurrency=BATCH_CONNECTIONS, count=requests)
        result["errors"] = requests - result["statuses"].get("202", 0)
        if result["errors"] or result["rps"] <= 0:
            raise RuntimeError(f"{name}: {result['statuses']}")
        # Events, not requests, per second: next to the hello world's requests, what one
        # request's worth of server time ingests.
        return {
            "requests_per_s": result["rps"] * BATCH_SIZE,
            "requests": result["requests"],
            "statuses": result["statuses"],
        }
    finally:
        run.supervisor.stop(server.process, grace=30)
        run.sqlite.drop(name)


def run(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    measurements: dict[str, Callable[[int], dict[str, Any]]] = {
        "hello_world": lambda r: _hello(run, r),
        "events_sqlite": lambda r: _serve(run, r, "sqlite", subscribed=False),
        "events_sqlite_subscribed": lambda r: _serve(run, r, "sqlite", subscribed=True),
    }
    if run.needs_postgres() is not None:
        measurements["events_postgres"] = lambda r: _serve(run, r, "postgres", subscribed=False)
    measurements["batch_sqlite"] = lambda r: _batch(run, r)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in measurements}
    for r in range(sizes.rounds):
        for name, measure in measurements.items():
            rounds[name].append(measure(r))
            run.say(f"scenario 6 (ingest), round {r + 1}: {name} {rounds[name][-1]['requests_per_s']:,.0f}/s")
    rates = {name: [m["requests_per_s"] for m in found] for name, found in rounds.items()}
    return {
        "settings": {
            "concurrency": sizes.ingest_concurrency,
            "seconds": sizes.ingest_seconds,
            "warmup": sizes.ingest_warmup,
            "body_bytes": len(api.publish_body()),
            "server": "uvicorn, httptools, uvloop, access log off (as serve runs it)",
        },
        "requests_per_s": {name: spread(values) for name, values in rates.items()},
        "ratios_to_hello_world": {
            name: ratio(values, rates["hello_world"])
            for name, values in rates.items()
            if name != "hello_world"
        },
        "rounds": rounds,
        "batch": {"size": BATCH_SIZE, "endpoints": BATCH_ENDPOINTS, "connections": BATCH_CONNECTIONS},
    }
