"""Scenario 5, scale of the queue: claims and memory with a small and a huge backlog.

For each backend, two stores hold ``scale_small`` (10 thousand) and ``scale_large`` (1 million)
pending deliveries to 100 endpoints, made by ``bench.backlog`` (bulk SQL copies of a published
event, in a minute or two). In each round our worker process delivers from each for
``scale_seconds``; it times every claim of a full batch (128), both as the dispatcher awaited it
and as the store's own work on its thread, and reports its peak resident memory. The small store
is a fresh copy every round (a round uses up part of it); the large one is shared. Ratios are
large over small, round by round.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from . import backlog
from .figures import ratio, spread
from .harness import Run

__all__ = ["run"]


def _deliver_for(run: Run, name: str, db: str, seconds: float) -> dict[str, Any]:
    engine = run.engine(name, db)
    try:
        started = engine.call("start")["started"]
        time.sleep(seconds)
        final = engine.call("stop", timeout=120)
    finally:
        engine.close()
    claims, work = final["claims_s"], final["claim_work_s"]
    if not claims:
        raise RuntimeError(f"{name}: no full claim in {seconds} s")
    return {
        "claim_ms": 1000 * statistics.median(claims),
        "claim_work_ms": 1000 * statistics.median(work),
        "claims": len(claims),
        "deliveries_per_s": final["succeeded"] / (final["now"] - started),
        "peak_rss_mib": final.get("peak_rss_kib", 0) / 1024,
        "rss_mib": final.get("rss_kib", 0) / 1024,
    }


def _backend(run: Run, backend: str) -> dict[str, Any]:
    sizes = run.sizes
    if backend == "sqlite":
        store: Any = run.sqlite
        make = run.sqlite.fresh
    else:
        store = run.postgres
        make = run.postgres.fresh  # type: ignore[union-attr]
    built: dict[str, Any] = {}
    for label, count in (("small", sizes.scale_small), ("large", sizes.scale_large)):
        run.say(f"scenario 5 (scale), {backend}: filling {count:,} pending deliveries")
        url = make(f"s5_{label}")
        built[label] = backlog.fill(url, run.base_url, count)
        if backend == "postgres":
            run.postgres.analyze(f"s5_{label}")  # type: ignore[union-attr]
    rounds: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
    try:
        for r in range(sizes.rounds):
            small = store.copy("s5_small", "s5_small_round")
            rounds["small"].append(_deliver_for(run, f"s5-{backend}-small-{r}", small, sizes.scale_seconds))
            store.drop("s5_small_round")
            large_url = store.url("s5_large")
            rounds["large"].append(
                _deliver_for(run, f"s5-{backend}-large-{r}", large_url, sizes.scale_seconds)
            )
            small_ms, large = rounds["small"][-1]["claim_ms"], rounds["large"][-1]
            run.say(
                f"scenario 5, {backend}, round {r + 1}: claim {small_ms:.2f} ms ({sizes.scale_small:,})"
                f" vs {large['claim_ms']:.2f} ms ({sizes.scale_large:,});"
                f" peak RSS {large['peak_rss_mib']:.0f} MiB"
            )
    finally:
        for label in ("small", "large"):
            store.drop(f"s5_{label}")
    keys = ("claim_ms", "claim_work_ms", "peak_rss_mib", "deliveries_per_s")
    return {
        "fill": built,
        **{label: {key: spread([m[key] for m in rounds[label]]) for key in keys} for label in rounds},
        "large_over_small": {
            key: ratio([m[key] for m in rounds["large"]], [m[key] for m in rounds["small"]]) for key in keys
        },
        "rounds": rounds,
    }


def run(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    result: dict[str, Any] = {
        "settings": {
            "small": sizes.scale_small,
            "large": sizes.scale_large,
            "endpoints": 100,
            "claim_batch": 128,
            "seconds": sizes.scale_seconds,
        },
        "backends": {"sqlite": _backend(run, "sqlite")},
    }
    if run.needs_postgres() is not None:
        result["backends"]["postgres"] = _backend(run, "postgres")
    return result
