"""The benchmark harness works: ``python -m bench all --quick`` runs every scenario and reports
sane figures (it does not check that the performance targets are met)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-results")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--quick", "--quiet", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(out.iterdir())
    assert [f.suffix for f in files if f.suffix != ".png"] == [".json", ".md"]
    found: dict[str, Any] = json.loads(next(f for f in files if f.suffix == ".json").read_text())
    found["_markdown"] = next(f for f in files if f.suffix == ".md").read_text()
    return found


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def test_every_scenario_ran_and_the_run_was_quick(report: dict[str, Any]) -> None:
    """All six scenarios produced figures, none failed, and --quick took about a minute at most."""
    assert list(report["scenarios"]) == ["throughput", "latency", "fanout", "outage", "scale", "ingest"]
    assert not [name for name, found in report["scenarios"].items() if "error" in found]
    assert report["elapsed_s"] < 300  # under a minute on the reference machine; slack for a busy one
    for title in (
        "## 1. Throughput",
        "## 2. Latency",
        "## 3. Fan-out",
        "## 4. Outage",
        "## 5. Scale",
        "## 6.",
    ):
        assert title in report["_markdown"]


def test_throughput_figures_are_sane(report: dict[str, Any]) -> None:
    """Every client delivered with verified signatures, our rounds delivered exactly the backlog
    at a positive rate, and each ratio is a finite positive number where its reference counted
    any request.

    A reference client is measured over a window (0.5 s after a 0.2 s warm-up with --quick): on
    a loaded machine its 64 connections may not answer within it (found: httpx at 0 requests, load
    average 9), so its rate may be 0 and its ratios undefined. Ours are timed from the first claim
    to the last success, so they are positive whenever the backlog was delivered. Which client is
    the faster is a benchmark finding, not a test."""
    throughput = report["scenarios"]["throughput"]
    events = throughput["settings"]["events"]
    for name, rounds in throughput["rounds"].items():
        for measured in rounds:
            rate = measured["deliveries_per_s"]
            assert math.isfinite(rate), name
            assert rate >= 0, name
            assert measured["bad_signatures"] == 0, name
            if name.startswith("ours"):
                assert _positive(rate), name
                if name != "ours_api_sqlite":
                    assert measured["requests"] == events, name
    for ours, references in throughput["ratios"].items():
        for reference, found in references.items():
            assert found["median"] is None or _positive(found["median"]), (ours, reference)
    assert throughput["ratios"], "no ratio was taken"


def test_latency_percentiles_are_ordered(report: dict[str, Any]) -> None:
    """On both paths (core API, POST /events), at each load, every round's percentiles come from
    one sample of every event sent (``n``), are finite and ordered, and the floor was measured.

    Ours are not required to be positive: they are the receiver's stamp minus the time the
    publisher saw its answer, read in two processes, and on a loaded machine the delivery often
    reaches the receiver before the load client is scheduled to read its 202 (found: a minimum of
    -24 ms and a p50 of 0.1 ms through the API at load average 8), so a small sample's p50 can be
    negative. The floor's are stamped before the request is sent: positive by causality.
    (Whether the floor is below ours is a benchmark finding, not a test: on a shared machine a
    timed comparison fails by chance.)"""
    paths = report["scenarios"]["latency"]["paths"]
    assert set(paths) == {"core", "api"}
    keys = ("min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")
    for path, found in paths.items():
        for load, at in found["loads"].items():
            where = (path, load)
            for ours in at["rounds"]["ours"]:
                assert ours["n"] == ours["events"] > 0, where
                figures = [ours[key] for key in keys]
                assert all(math.isfinite(v) for v in figures), where
                assert figures == sorted(figures), where
                assert ours["max_ms"] > 0, where  # not every delivery beat its publisher's stamp
            medians = [at["ours"][key]["median"] for key in keys[1:]]
            assert medians == sorted(medians), where
            for floor in at["rounds"]["floor_aiohttp"]:
                assert floor["n"] == floor["events"] > 0, where
                assert floor["min_ms"] > 0, where


def test_fanout_reached_every_endpoint_once(report: dict[str, Any]) -> None:
    """Each of the 1,000 endpoints got every event exactly once."""
    fanout = report["scenarios"]["fanout"]
    assert fanout["settings"]["endpoints"] == 1000
    for measured in fanout["rounds"]:
        assert measured["endpoints_missing_or_extra"] == 0
        assert measured["duplicates"] == 0
        assert _positive(measured["deliveries_per_s"])


def test_outage_backlog_drained_after_recovery(report: dict[str, Any]) -> None:
    """The failing endpoint saw failed attempts, then got everything after it recovered; the
    healthy one was measured in every phase."""
    outage = report["scenarios"]["outage"]
    for measured in outage["rounds"]:
        assert measured["a_failed_attempts"] > 0
        assert measured["a_drain_after_recovery_s"] >= 0
        assert set(measured["b_latency"]) == {"before", "during", "after"}


def test_scale_claims_and_memory_are_measured(report: dict[str, Any]) -> None:
    """Claims took some milliseconds and the worker's memory is plausible, on every backend run."""
    for backend, found in report["scenarios"]["scale"]["backends"].items():
        for size in ("small", "large"):
            assert _positive(found[size]["claim_ms"]["median"]), backend
            assert 20 < found[size]["peak_rss_mib"]["median"] < 2000, backend
        assert _positive(found["large_over_small"]["claim_ms"]["median"]), backend


def test_ingest_is_measured_next_to_hello_world(report: dict[str, Any]) -> None:
    """POST /events, POST /events/batch and the hello world each answered every request with a
    2xx, and each ratio to the hello world is a finite positive number. (Which is the faster is a
    benchmark finding: a short --quick round on a loaded machine can put either ahead, and a
    faster batch ingest is no defect.)"""
    ingest = report["scenarios"]["ingest"]
    assert _positive(ingest["requests_per_s"]["hello_world"]["median"])
    for name, rounds in ingest["rounds"].items():
        for measured in rounds:
            assert measured["statuses"], name
            assert all(200 <= int(status) < 300 for status in measured["statuses"]), (
                name,
                measured["statuses"],
            )
    for name, found in ingest["ratios_to_hello_world"].items():
        assert _positive(found["median"]), name
