"""How rounds become the figures we report: medians with their range, same-round ratios, and
latency percentiles."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["percentiles", "ratio", "spread"]


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and min-max of the rounds that produced a value, and the rounds themselves."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    if not kept:
        return {"median": None, "min": None, "max": None, "rounds": list(values)}
    return {
        "median": statistics.median(kept),
        "min": min(kept),
        "max": max(kept),
        "rounds": [None if v is None else round(v, 4) for v in values],
    }


def ratio(ours: Sequence[float | None], reference: Sequence[float | None]) -> dict[str, Any]:
    """Our figure over the reference's, round by round (each pair was measured back to back),
    then summarised by ``spread``. The median of ratios, not the ratio of medians: the pairing
    is what cancels the machine's drift between rounds."""
    pairs = [
        None if a is None or b is None or not b else a / b for a, b in zip(ours, reference, strict=False)
    ]
    return spread(pairs)


def percentiles(samples_s: Sequence[float]) -> dict[str, Any]:
    """p50, p90, p99 and max of latencies given in seconds, in milliseconds."""
    if not samples_s:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "min_ms": None}
    ordered = sorted(samples_s)

    def at(fraction: float) -> float:
        # nearest-rank: the smallest sample with at least this fraction of samples at or below it
        index = max(0, math.ceil(fraction * len(ordered)) - 1)
        return ordered[index] * 1000

    return {
        "n": len(ordered),
        "p50_ms": round(at(0.50), 3),
        "p90_ms": round(at(0.90), 3),
        "p99_ms": round(at(0.99), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "min_ms": round(ordered[0] * 1000, 3),
    }
