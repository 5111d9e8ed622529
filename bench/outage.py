"""Scenario 4, outage and recovery: one endpoint fails everything for a while, another stays healthy.

Two endpoints subscribe to the event type: A (paths under ``/down``) and B (``/up``). Our engine
publishes at a fixed rate, open loop, each event going to both, with a short retry schedule
(``retry_delays``), while the receiver answers 503 to A for ``outage_down`` seconds after
``outage_healthy`` seconds of health. Publishing goes on for a while after A recovers, then we
wait until every delivery to both has succeeded. Figures: the time from recovery until A's
backlog is delivered (the retry schedule bounds it from below: a delivery that failed just before
recovery waits out its next delay), and B's latency before, during and after the outage: per-
endpoint fairness means B's figures during the outage stay those of before (the ratio). A PNG
plots both over time.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from typing import Any

from .figures import percentiles, spread
from .harness import Run
from .throughput import recording

__all__ = ["run"]

DOWN, UP = "/down/a", "/up/b"
BUCKET = 0.25  # seconds per point of the timeline


def _round(run: Run, name: str) -> dict[str, Any]:
    sizes = run.sizes
    rate = sizes.outage_rate
    after = min(2.0, sizes.outage_healthy * 2)  # publishing goes on this long after recovery
    count = round(rate * (sizes.outage_healthy + sizes.outage_down + after))
    engine = run.engine(name, run.sqlite.fresh(name), retry_delays=sizes.retry_delays)
    try:
        engine.call("register", urls=[run.base_url + DOWN, run.base_url + UP])
        engine.call("start")
        with recording(run) as records:
            fail_from = time.monotonic() + 0.05 + sizes.outage_healthy
            fail_until = fail_from + sizes.outage_down
            run.receiver.control(
                fail_prefix="/down", fail_status=503, fail_from=fail_from, fail_until=fail_until
            )
            published = engine.call(
                "publish", count=count, rate=rate, record=True, timeout=count / rate + 120
            )
            done = engine.call(
                "wait", succeeded=2 * count, within=sizes.outage_tail, timeout=sizes.outage_tail + 30
            )
            run.receiver.control(fail_prefix=None)
        final = engine.call("stop", timeout=60)
    finally:
        engine.close()
        run.sqlite.drop(name)
    if done["succeeded"] < 2 * count:
        raise RuntimeError(f"{name}: {done['succeeded']} of {2 * count} deliveries succeeded in time")
    returned: dict[str, float] = dict(published["times"])
    ok: dict[str, dict[str, float]] = {DOWN: {}, UP: {}}
    failures: list[float] = []
    for t, path, event, status in records:
        if status == 200 and path in ok:
            ok[path].setdefault(event, t)
        elif path == DOWN:
            failures.append(t)
    began = published["began"]

    def phase(t: float) -> str:
        return "before" if t < fail_from else "during" if t < fail_until else "after"

    b_latency: dict[str, list[float]] = defaultdict(list)
    for event, t in returned.items():
        b_latency[phase(t)].append(ok[UP][event] - t)
    a_successes = sorted(ok[DOWN].values())
    stranded_at_recovery = sum(
        1 for event, t in returned.items() if t < fail_until and ok[DOWN][event] >= fail_until
    )
    b = {key: percentiles(values) for key, values in b_latency.items()}
    return {
        "events": count,
        "rate": rate,
        "outage_s": fail_until - fail_from,
        "a_failed_attempts": len(failures),
        "a_backlog_at_recovery": stranded_at_recovery,
        "a_drain_after_recovery_s": a_successes[-1] - fail_until,
        "a_latency": percentiles([ok[DOWN][event] - t for event, t in returned.items()]),
        "b_latency": b,
        "b_p99_during_over_before": _over(b, "during", "before", "p99_ms"),
        "b_p50_during_over_before": _over(b, "during", "before", "p50_ms"),
        "peak_rss_mib": round(final.get("peak_rss_kib", 0) / 1024, 1),
        "timeline": _timeline(began, fail_from, fail_until, returned, ok, failures),
    }


def _over(b: dict[str, dict[str, Any]], top: str, bottom: str, key: str) -> float | None:
    if b.get(top, {}).get(key) is None or not b.get(bottom, {}).get(key):
        return None
    return float(b[top][key] / b[bottom][key])


def _timeline(
    began: float,
    fail_from: float,
    fail_until: float,
    returned: dict[str, float],
    ok: dict[str, dict[str, float]],
    failures: list[float],
) -> dict[str, Any]:
    """Per bucket of ``BUCKET`` seconds since publishing began: B's latency percentiles (by
    publish time), A's attempts that failed and succeeded, and A's backlog (published, not yet
    delivered) at the bucket's end."""
    end = max(max(ok[DOWN].values()), max(ok[UP].values())) - began
    buckets = int(end / BUCKET) + 1
    b_by_bucket: list[list[float]] = [[] for _ in range(buckets)]
    for event, t in returned.items():
        b_by_bucket[min(int((t - began) / BUCKET), buckets - 1)].append(ok[UP][event] - t)
    a_ok = [0] * buckets
    for t in ok[DOWN].values():
        a_ok[min(int((t - began) / BUCKET), buckets - 1)] += 1
    a_failed = [0] * buckets
    for t in failures:
        if t >= began:
            a_failed[min(int((t - began) / BUCKET), buckets - 1)] += 1
    published_times = sorted(returned.values())
    delivered_times = sorted(ok[DOWN].values())
    backlog = []
    for index in range(buckets):
        edge = began + (index + 1) * BUCKET
        backlog.append(
            _count_at_or_before(published_times, edge) - _count_at_or_before(delivered_times, edge)
        )
    return {
        "bucket_s": BUCKET,
        "outage_from_s": fail_from - began,
        "outage_until_s": fail_until - began,
        "b_p50_ms": [percentiles(v)["p50_ms"] for v in b_by_bucket],
        "b_p99_ms": [percentiles(v)["p99_ms"] for v in b_by_bucket],
        "b_max_ms": [percentiles(v)["max_ms"] for v in b_by_bucket],
        "a_succeeded": a_ok,
        "a_failed": a_failed,
        "a_backlog": backlog,
    }


def _count_at_or_before(ordered: list[float], edge: float) -> int:
    return bisect.bisect_right(ordered, edge)


def run(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    rounds = []
    for r in range(sizes.rounds):
        run.say(
            f"scenario 4 (outage), round {r + 1}: {sizes.outage_rate:.0f} events/s to 2 endpoints,"
            f" one down for {sizes.outage_down:g} s"
        )
        rounds.append(_round(run, f"s4-{r}"))
        last = rounds[-1]
        run.say(
            f"scenario 4, round {r + 1}: backlog drained"
            f" {last['a_drain_after_recovery_s']:.2f} s after recovery;"
            f" healthy p99 during/before {last['b_p99_during_over_before'] or float('nan'):.2f}"
        )
    phases = ("before", "during", "after")
    return {
        "settings": {
            "rate": sizes.outage_rate,
            "healthy_s": sizes.outage_healthy,
            "outage_s": sizes.outage_down,
            "retry_delays_s": sizes.retry_delays,
            "per_endpoint_concurrency": 8,
            "store": "sqlite",
        },
        "a_drain_after_recovery_s": spread([r["a_drain_after_recovery_s"] for r in rounds]),
        "a_backlog_at_recovery": spread([r["a_backlog_at_recovery"] for r in rounds]),
        "a_failed_attempts": spread([r["a_failed_attempts"] for r in rounds]),
        "b_latency": {
            phase: {
                key: spread([r["b_latency"].get(phase, {}).get(key) for r in rounds])
                for key in ("p50_ms", "p99_ms", "max_ms")
            }
            for phase in phases
        },
        "b_p99_during_over_before": spread([r["b_p99_during_over_before"] for r in rounds]),
        "b_p50_during_over_before": spread([r["b_p50_during_over_before"] for r in rounds]),
        "rounds": rounds,
    }
