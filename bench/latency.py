"""Scenario 2, latency: from ``publish`` returning to the receiver reading the request.

Two paths, each at shares of its own throughput measured by scenario 1 in this run, open loop
(event i is published at start + i / rate, whatever happened to the ones before):

- ``core``: our engine calls ``WebhookService.publish`` in the process that also runs the
  dispatcher, as ``serve`` does (a publish wakes the dispatcher; no polling), at 5, 20 and 60 %
  of the SQLite drain rate (``ours_sqlite``); latency from ``publish`` returning.
- ``api``: ``bench.load`` POSTs to ``serve``'s ``/events`` at 20 and 60 % of the end-to-end rate
  through the API (``ours_api_sqlite``); latency from the request being sent (an accepted one).

The receiver stamps each request with the same monotonic clock. The reference is the floor of
the path: raw aiohttp POSTing at the same rate, open loop, to the same receiver (time from
calling ``post`` to the receiver reading the request).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from . import clients
from .figures import percentiles, ratio, spread
from .harness import Run
from .processes import wait_for
from .throughput import deliver_backlog, publish_backlog, recording

__all__ = ["PATHS", "api_latency", "engine_latency", "run"]

PATH = "/s2"
API_PATH = "/s2api"


def engine_latency(run: Run, name: str, rate: float, seconds: float, per_endpoint: int) -> dict[str, Any]:
    """Publish at ``rate`` for ``seconds`` into a fresh SQLite store while delivering; latencies."""
    count = max(1, round(rate * seconds))
    engine = run.engine(name, run.sqlite.fresh(name), per_endpoint=per_endpoint)
    try:
        engine.call("register", urls=[run.base_url + PATH])
        engine.call("start")
        with recording(run) as records:
            published = engine.call("publish", count=count, rate=rate, record=True, timeout=seconds + 120)
            engine.call("wait", succeeded=count, within=120, timeout=150)
        final = engine.call("stop", timeout=60)
    finally:
        engine.close()
        run.sqlite.drop(name)
    returned = dict(published["times"])
    arrivals = {event: t for t, path, event, status in records if path == PATH and status == 200}
    missing = set(returned) - set(arrivals)
    if missing:
        raise RuntimeError(f"{name}: {len(missing)} published events never reached the receiver")
    latencies = [arrivals[event] - returned[event] for event in returned]
    return {
        "rate": rate,
        "events": count,
        "achieved_publish_rate": count / published["seconds"],
        "slowest_publish_ms": 1000 * published["slowest_publish_s"],
        "cpu_s": final["cpu_s"],
        **percentiles(latencies),
    }


async def _open_loop(url: str, rate: float, seconds: float, concurrency: int) -> dict[str, float]:
    import aiohttp

    body, headers = clients.signed_request()
    sent: dict[str, float] = {}
    count = max(1, round(rate * seconds))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def post(event_id: str) -> None:
            sent[event_id] = time.monotonic()
            request_headers = [*headers, ("X-Attribution-Event-Id", event_id)]
            async with session.post(url, data=body, headers=request_headers) as response:
                await response.read()

        tasks = []
        began = time.monotonic()
        for index in range(count):
            delay = began + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(post(f"evt_floor_{index:07d}")))
        await asyncio.gather(*tasks)
    return sent


def floor_latency(run: Run, rate: float, seconds: float) -> dict[str, Any]:
    """Raw aiohttp's latency at ``rate`` to the same receiver: the path's floor."""
    factory = None
    if run.loop == "uvloop":
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
    with recording(run) as records, asyncio.Runner(loop_factory=factory) as runner:
        sent = runner.run(_open_loop(run.base_url + PATH, rate, seconds, run.sizes.concurrency))
    arrivals = {event: t for t, path, event, status in records if path == PATH}
    latencies = [arrivals[event] - t for event, t in sent.items() if event in arrivals]
    return {"rate": rate, "events": len(sent), **percentiles(latencies)}


def api_latency(run: Run, name: str, rate: float, seconds: float) -> dict[str, Any]:
    """POST events to ``serve`` (a fresh SQLite store, one webhook) open loop at ``rate`` for
    ``seconds``; latencies from each accepted request being sent to the receiver reading the delivery."""
    from . import api

    count = max(1, round(rate * seconds))
    db = run.sqlite.fresh(name)
    server = api.start_serve(run, name, db, per_endpoint=run.sizes.concurrency)
    try:
        api.register(server, run.base_url + API_PATH)
        before = run.receiver.stats()["paths"].get(API_PATH, 0)
        with recording(run) as records:
            sent = api.load(
                run,
                name,
                server.url + "/events",
                api.publish_body(),
                server.headers,
                concurrency=run.sizes.ingest_concurrency,
                count=count,
                rate=rate,
            )
            wait_for(
                lambda: run.receiver.stats()["paths"].get(API_PATH, 0) - before >= count,
                timeout=120,
                what=f"{name}: {count} deliveries",
            )
    finally:
        run.supervisor.stop(server.process, grace=30)
        run.sqlite.drop(name)
    answered = dict(sent["answered"])
    arrivals = {event: t for t, path, event, status in records if path == API_PATH and status == 200}
    if len(answered) != count or set(answered) - set(arrivals):
        raise RuntimeError(f"{name}: {sent['statuses']}; {len(set(answered) - set(arrivals))} not delivered")
    return {
        "rate": rate,
        "events": count,
        "achieved_publish_rate": sent["sent_per_s"],
        **percentiles([arrivals[event] - t for event, t in answered.items()]),
    }


def _throughput(run: Run, key: str) -> float:
    """Scenario 1's median in this run for ``key``, or a short measurement of it."""
    found = run.results.get("throughput", {}).get("deliveries_per_s", {}).get(key, {})
    if found.get("median"):
        return float(found["median"])
    run.say(f"scenario 2: measuring scenario 1's {key} first")
    if key == "ours_api_sqlite":
        from .throughput import through_api

        return float(through_api(run, 0)["deliveries_per_s"])
    count = run.sizes.events
    publish_backlog(run, "s2-publish", run.sqlite.fresh("s2_template"), count)
    measured = deliver_backlog(run, "s2-deliver", run.sqlite.copy("s2_template", "s2_round"), count)
    return float(measured["deliveries_per_s"])


#: Each path: what publishes, the throughput (scenario 1's figure) its loads are shares of, the loads.
PATHS = {
    "core": ("ours_sqlite", (0.05, 0.2, 0.6)),
    "api": ("ours_api_sqlite", (0.2, 0.6)),
}


def run(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    result: dict[str, Any] = {
        "settings": {
            "seconds": sizes.latency_seconds,
            "per_endpoint_concurrency": sizes.concurrency,
            "store": "sqlite",
        },
        "paths": {},
    }
    keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms")
    for path, (key, loads) in PATHS.items():
        throughput = _throughput(run, key)
        found: dict[str, Any] = {"throughput_key": key, "throughput_per_s": throughput, "loads": {}}
        for load in loads:
            rate = load * throughput
            ours: list[dict[str, Any]] = []
            floor: list[dict[str, Any]] = []
            for r in range(sizes.rounds):
                name = f"s2-{path}-{int(load * 100)}-{r}"
                if path == "core":
                    ours.append(engine_latency(run, name, rate, sizes.latency_seconds, sizes.concurrency))
                else:
                    ours.append(api_latency(run, name, rate, sizes.latency_seconds))
                floor.append(floor_latency(run, rate, sizes.latency_seconds))
                run.say(
                    f"scenario 2, {path}, {load:.0%} load ({rate:,.0f}/s), round {r + 1}:"
                    f" p50 {ours[-1]['p50_ms']:.2f} ms, p99 {ours[-1]['p99_ms']:.2f} ms"
                    f" (aiohttp floor p50 {floor[-1]['p50_ms']:.2f} ms)"
                )
            found["loads"][f"{int(load * 100)}%"] = {
                "rate": rate,
                "ours": {k: spread([o[k] for o in ours]) for k in keys},
                "floor_aiohttp": {k: spread([f[k] for f in floor]) for k in keys},
                "ratio_to_floor": {k: ratio([o[k] for o in ours], [f[k] for f in floor]) for k in keys},
                "achieved_publish_rate": spread([o["achieved_publish_rate"] for o in ours]),
                "rounds": {"ours": ours, "floor_aiohttp": floor},
            }
        result["paths"][path] = found
    return result
