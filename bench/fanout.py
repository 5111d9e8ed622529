"""Scenario 3, fan-out: one event type subscribed by 1,000 endpoints (distinct paths on the receiver).

Each round registers the endpoints in a fresh SQLite store, starts the dispatcher (the default
per-endpoint limit of 8 in flight, 64 in all), and publishes ``fanout_events`` events one after
the other through the core API while it delivers. Figures: the time to publish one event (one
append of 1,001 streams), deliveries per second from the first publish to the last delivery
recorded, and per event the time until its last endpoint had it. Every endpoint must get every
event exactly once. Ratios: to raw aiohttp and to our single-endpoint throughput (scenario 1),
both measured in this run.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from .figures import percentiles, ratio, spread
from .harness import Run
from .throughput import recording

__all__ = ["run"]


def _round(run: Run, name: str) -> dict[str, Any]:
    sizes = run.sizes
    paths = [f"/f/{index:04d}" for index in range(sizes.fanout_endpoints)]
    engine = run.engine(name, run.sqlite.fresh(name))
    try:
        registered = engine.call("register", urls=[run.base_url + path for path in paths], timeout=300)
        engine.call("start")
        expected = sizes.fanout_events * len(paths)
        with recording(run) as records:
            published = engine.call(
                "publish", count=sizes.fanout_events, concurrency=1, record=True, timeout=600
            )
            done = engine.call("wait", succeeded=expected, within=600, timeout=630)
        final = engine.call("stop", timeout=60)
    finally:
        engine.close()
        run.sqlite.drop(name)
    assert len(registered["endpoints"]) == len(paths)
    if done["succeeded"] < expected:
        raise RuntimeError(f"{name}: {done['succeeded']} of {expected} deliveries succeeded")
    delivered = Counter((path, event) for _, path, event, status in records if status == 200)
    duplicates = sum(n - 1 for n in delivered.values() if n > 1)
    per_path = Counter(path for path, _ in delivered)
    wrong = [path for path in paths if per_path[path] != sizes.fanout_events]
    returned = dict(published["times"])
    last_arrival: dict[str, float] = {}
    for t, _, event, status in records:
        if status == 200 and event in returned:
            last_arrival[event] = max(t, last_arrival.get(event, t))
    seconds = done["last_success"] - published["began"]
    return {
        "deliveries": expected,
        "deliveries_per_s": expected / seconds,
        "publish_ms_per_event": 1000 * published["seconds"] / sizes.fanout_events,
        "slowest_publish_ms": 1000 * published["slowest_publish_s"],
        "all_reached_s": [last_arrival[event] - t for event, t in returned.items()],
        "endpoints_missing_or_extra": len(wrong),
        "duplicates": duplicates,
        "peak_rss_mib": round(final.get("peak_rss_kib", 0) / 1024, 1),
        "claim_ms_median": 1000 * statistics.median(final["claims_s"]) if final["claims_s"] else None,
    }


def run(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    rounds = []
    for r in range(sizes.rounds):
        run.say(f"scenario 3 (fan-out), round {r + 1}: {sizes.fanout_endpoints:,} endpoints")
        rounds.append(_round(run, f"s3-{r}"))
        run.say(f"scenario 3, round {r + 1}: {rounds[-1]['deliveries_per_s']:,.0f} deliveries/s")
    rates = [r["deliveries_per_s"] for r in rounds]
    throughput = run.results.get("throughput", {}).get("rounds", {})
    references: dict[str, Any] = {}
    for key, name in (("aiohttp", "raw aiohttp"), ("ours_sqlite", "one endpoint (scenario 1)")):
        found = [m["deliveries_per_s"] for m in throughput.get(key, [])]
        if found:
            # Paired with scenario 1's rounds in order: both ran in this run, minutes apart.
            references[name] = ratio(rates, found[: len(rates)])
    return {
        "settings": {
            "endpoints": sizes.fanout_endpoints,
            "events": sizes.fanout_events,
            "per_endpoint_concurrency": 8,
            "concurrency": sizes.concurrency,
            "store": "sqlite",
        },
        "deliveries_per_s": spread(rates),
        "publish_ms_per_event": spread([r["publish_ms_per_event"] for r in rounds]),
        "time_to_all_endpoints": percentiles([s for r in rounds for s in r["all_reached_s"]]),
        "ratios": references,
        "rounds": [{k: v for k, v in r.items() if k != "all_reached_s"} for r in rounds],
    }
