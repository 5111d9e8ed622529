"""Scenario 2, latency: from ``publish`` returning to the receiver reading the request.

Our engine publishes at a fixed rate (20 % and 60 % of the SQLite throughput scenario 1 measured
in this run), open loop: event i is published at start + i / rate whatever happened to the ones
before, in the process that also runs the dispatcher, as ``serve`` does (a publish wakes the
dispatcher; no polling). The receiver stamps each request with the same monotonic clock. The
reference is the floor of the path: raw aiohttp POSTing at the same rate, open loop, to the same
receiver (time from calling ``post`` to the receiver reading the request).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from . import clients
from .figures import percentiles, ratio, spread
from .harness import Run
from .throughput import deliver_backlog, publish_backlog, recording

__all__ = ["LOADS", "engine_latency", "run"]

LOADS = (0.2, 0.6)
PATH = "/s2"


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


def _throughput(run: Run) -> float:
    """Our SQLite throughput: scenario 1's median in this run, or a short measurement of it."""
    found = run.results.get("throughput", {}).get("deliveries_per_s", {}).get("ours_sqlite", {})
    if found.get("median"):
        return float(found["median"])
    count = run.sizes.events
    run.say(f"scenario 2: measuring throughput first ({count:,} events, SQLite)")
    publish_backlog(run, "s2-publish", run.sqlite.fresh("s2_template"), count)
    measured = deliver_backlog(run, "s2-deliver", run.sqlite.copy("s2_template", "s2_round"), count)
    return float(measured["deliveries_per_s"])


def run(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    throughput = _throughput(run)
    result: dict[str, Any] = {
        "settings": {
            "throughput_per_s": throughput,
            "seconds": sizes.latency_seconds,
            "per_endpoint_concurrency": sizes.concurrency,
            "store": "sqlite",
        },
        "loads": {},
    }
    for load in LOADS:
        rate = load * throughput
        ours: list[dict[str, Any]] = []
        floor: list[dict[str, Any]] = []
        for r in range(sizes.rounds):
            ours.append(
                engine_latency(
                    run, f"s2-{int(load * 100)}-{r}", rate, sizes.latency_seconds, sizes.concurrency
                )
            )
            floor.append(floor_latency(run, rate, sizes.latency_seconds))
            run.say(
                f"scenario 2, {load:.0%} load ({rate:,.0f}/s), round {r + 1}:"
                f" p50 {ours[-1]['p50_ms']:.2f} ms, p99 {ours[-1]['p99_ms']:.2f} ms"
                f" (aiohttp floor p50 {floor[-1]['p50_ms']:.2f} ms)"
            )
        keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms")
        result["loads"][f"{int(load * 100)}%"] = {
            "rate": rate,
            "ours": {key: spread([o[key] for o in ours]) for key in keys},
            "floor_aiohttp": {key: spread([f[key] for f in floor]) for key in keys},
            "ratio_to_floor": {key: ratio([o[key] for o in ours], [f[key] for f in floor]) for key in keys},
            "achieved_publish_rate": spread([o["achieved_publish_rate"] for o in ours]),
            "rounds": {"ours": ours, "floor_aiohttp": floor},
        }
    return result
