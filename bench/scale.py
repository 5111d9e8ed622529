"""Scenario 5, scale: of the queue (claims and memory with a small and a huge backlog), and out
(one PostgreSQL worker process against two).

For each backend, two stores hold ``scale_small`` (10 thousand) and ``scale_large`` (1 million)
pending deliveries to 100 endpoints, made by ``bench.backlog`` (bulk SQL copies of a published
event, in a minute or two). In each round our worker process delivers from each for
``scale_seconds``; it times every claim of a full batch (128), both as the dispatcher awaited it
and as the store's own work on its thread, and reports its peak resident memory. The small store
is a fresh copy every round (a round uses up part of it); the large one is shared. Ratios are
large over small, round by round.

Scale-out (PostgreSQL only): ``scale_out_events`` events, each to 16 endpoints, published once
through the core API into a template database; each round delivers a copy of it with one worker
process, then another copy with two (``bench.throughput.deliver_backlog``: the harness starts
them, tells both to go, and times them until every delivery is recorded as succeeded). Besides
deliveries per second it records what each delivery cost the machine, from ``/proc``: CPU of the
worker processes, of the receiver and of every PostgreSQL server process, and the WAL written
(``pg_current_wal_lsn`` before and after). With two cores in all, two workers can only double one
if the rest (receiver, PostgreSQL) costs nothing; the CPU shares say how close the machine lets
them come. The ratio is two over one, round by round.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from . import backlog
from .figures import ratio, spread
from .harness import Run
from .throughput import deliver_backlog

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


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


class _PostgresCpu:
    """CPU seconds spent by PostgreSQL's server processes while inside: sampled every 100 ms per
    process, since the workers' backends exit with their connections (what a backend spends
    after its last sample is lost: a lower bound)."""

    def __init__(self) -> None:
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="postgres-cpu")

    def _pids(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "comm").read_text().strip() == "postgres":
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def _once(self, first: bool) -> None:
        for pid in self._pids():
            cpu = _cpu_s(pid)
            self._first.setdefault(pid, cpu if first else 0.0)
            self._last[pid] = max(cpu, self._last.get(pid, 0.0))

    def _sample(self) -> None:
        while not self._done.wait(0.1):
            self._once(first=False)

    def __enter__(self) -> _PostgresCpu:
        self._once(first=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self._once(first=False)

    @property
    def seconds(self) -> float:
        return sum(self._last[pid] - self._first[pid] for pid in self._last)


def _wal_lsn(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar() or 0)
    finally:
        engine.dispose()


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _scale_out_round(run: Run, workers: int, r: int, count: int) -> dict[str, Any]:
    postgres = run.postgres
    assert postgres is not None
    db = postgres.copy("s5_out_template", "s5_out_round")
    try:
        wal, receiver, load = _wal_lsn(db), _cpu_s(run.receiver.process.pid), _load()
        with _PostgresCpu() as server:
            result = deliver_backlog(run, f"s5-out-pg{workers}-{r}", db, count, workers=workers)
        result["wal_bytes_per_delivery"] = (_wal_lsn(db) - wal) / count
        result["receiver_cpu_us_per_delivery"] = 1e6 * (_cpu_s(run.receiver.process.pid) - receiver) / count
        seconds = result["seconds"]
        result["worker_cpu_us_per_delivery"] = (
            1e6 * sum(share * seconds for share in result["cpu_per_wall"]) / count
        )
        result["postgres_cpu_us_per_delivery_lower_bound"] = 1e6 * server.seconds / count
        result["load_before"] = load
        result["load_after"] = _load()
        return result
    finally:
        postgres.drop("s5_out_round")


def _scale_out(run: Run) -> dict[str, Any]:
    """One PostgreSQL worker process against two, on the same backlog."""
    postgres = run.postgres
    assert postgres is not None
    sizes = run.sizes
    count = sizes.events
    endpoints = 16
    run.say(f"scenario 5 (scale-out): publishing {count:,} deliveries to {endpoints} endpoints, PostgreSQL")
    template = postgres.fresh("s5_out_template")
    engine = run.engine("s5-out-publish", template)
    try:
        engine.call("register", urls=[f"{run.base_url}/s5out/{n}" for n in range(endpoints)])
        published = engine.call("publish", count=count // endpoints, concurrency=16, timeout=1800)
    finally:
        engine.close()
    postgres.analyze("s5_out_template")
    rounds: dict[str, list[dict[str, Any]]] = {"one": [], "two": []}
    try:
        for r in range(sizes.rounds):
            for label, workers in (("one", 1), ("two", 2)):
                rounds[label].append(_scale_out_round(run, workers, r, count // endpoints * endpoints))
            one, two = rounds["one"][-1], rounds["two"][-1]
            run.say(
                f"scenario 5, scale-out round {r + 1}: one worker {one['deliveries_per_s']:,.0f}/s,"
                f" two {two['deliveries_per_s']:,.0f}/s"
                f" ({two['deliveries_per_s'] / one['deliveries_per_s']:.2f}x; load {two['load_before']:.1f})"
            )
    finally:
        postgres.drop("s5_out_template")
    keys = (
        "deliveries_per_s",
        "worker_cpu_us_per_delivery",
        "receiver_cpu_us_per_delivery",
        "postgres_cpu_us_per_delivery_lower_bound",
        "wal_bytes_per_delivery",
        "load_before",
    )
    return {
        "settings": {"deliveries": count // endpoints * endpoints, "endpoints": endpoints},
        "publish_events_per_s": published["published"] / published["seconds"],
        **{label: {key: spread([m[key] for m in rounds[label]]) for key in keys} for label in rounds},
        "two_over_one": ratio(
            [m["deliveries_per_s"] for m in rounds["two"]], [m["deliveries_per_s"] for m in rounds["one"]]
        ),
        "rounds": rounds,
    }


def publish_cost(run: Run, count: int = 2_000) -> dict[str, Any]:
    """What one publish (one event to one endpoint, through the core API, 64 publishers at
    once) costs on PostgreSQL: publishes per second of one process, its CPU, PostgreSQL's CPU and
    the WAL written, per publish. For ``docs/scaling.md``'s arithmetic."""
    postgres = run.postgres
    assert postgres is not None
    db = postgres.fresh("s5_publish")
    engine = run.engine("s5-publish-cost", db)
    try:
        engine.call("register", urls=[f"{run.base_url}/s5publish"])
        engine.call("publish", count=200, concurrency=64)  # warm: connections, statements, caches
        cpu = engine.call("progress")["cpu_s"]
        wal, load = _wal_lsn(db), _load()
        with _PostgresCpu() as server:
            published = engine.call("publish", count=count, concurrency=64, timeout=600)
            cpu = engine.call("progress")["cpu_s"] - cpu
        wal = _wal_lsn(db) - wal
    finally:
        engine.close()
        postgres.drop("s5_publish")
    return {
        "publishes_per_s": count / published["seconds"],
        "process_cpu_us_per_publish": 1e6 * cpu / count,
        "postgres_cpu_us_per_publish_lower_bound": 1e6 * server.seconds / count,
        "wal_bytes_per_publish": wal / count,
        "load_before": load,
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
        result["scale_out"] = _scale_out(run)
        count = 200 if run.quick else 2_000
        result["publish_cost"] = spread_rounds([publish_cost(run, count) for _ in range(sizes.rounds)])
    return result


def spread_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and min-max of each figure over rounds."""
    return {key: spread([r[key] for r in rounds]) for key in rounds[0]}
