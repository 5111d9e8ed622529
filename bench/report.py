"""The result file, its Markdown tables and its plot.

``write`` saves ``<stamp>.json`` (everything measured, every round), ``<stamp>.md`` (the tables:
each figure as median (min-max) over the rounds, each ratio taken round by round) and, when
matplotlib is installed and the outage scenario ran, ``<stamp>-outage.png``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["markdown", "write"]

DASH, TIMES = "\u2013", "\u00d7"  # en dash and multiplication sign, for the tables

Spread = dict[str, Any]


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


def _fig(s: Spread | None, digits: int = 0, unit: str = "") -> str:
    """``median (min-max)``, or just the median when there was one round."""
    if not s or s.get("median") is None:
        return DASH
    median = _num(s["median"], digits) + unit
    if s["min"] == s["max"]:
        return median
    return f"{median} ({_num(s['min'], digits)}{DASH}{_num(s['max'], digits)})"


def _x(s: Spread | None, digits: int = 2) -> str:
    return _fig(s, digits, TIMES)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _verdict(value: float | None, passes: Callable[[float], bool]) -> str:
    if value is None:
        return "not measured"
    return "met" if passes(value) else "**missed**"


_NAMES = {
    "aiohttp": "raw aiohttp (limit a)",
    "httpx": "raw httpx (limit b)",
    "bare": "bare asyncio (limit c, the ceiling)",
    "celery": f"Celery + Redis, prefork {TIMES}2 (baseline)",
    "ours_sqlite": "**ours, SQLite** (backlog published through the core API)",
    "ours_api_sqlite": "ours, SQLite, through `POST /events` (`serve`: ingest and delivery in one process)",
    "ours_postgres_1": "ours, PostgreSQL, 1 worker process",
    "ours_postgres_2": "ours, PostgreSQL, 2 worker processes",
}


def _headline(report: dict[str, Any]) -> list[str]:
    scenarios = report["scenarios"]
    rows = []
    t = scenarios.get("throughput", {}).get("ratios", {}).get("ours_sqlite", {})
    if t:
        aio, cel = t.get("aiohttp"), t.get("celery")
        aio_verdict = _verdict(aio and aio["median"], lambda v: v >= 0.7)
        rows.append([f"1: SQLite ≥ 0.7 {TIMES} raw aiohttp", _x(aio), aio_verdict])
        cel_verdict = _verdict(cel and cel["median"], lambda v: v >= 10)
        rows.append([f"1: SQLite ≥ 10 {TIMES} Celery", _x(cel), cel_verdict])
    for path, found in scenarios.get("latency", {}).get("paths", {}).items():
        low = found["loads"].get("20%", {}).get("ours")
        if not low:
            continue
        p50, p99 = low["p50_ms"], low["p99_ms"]
        rows.append(
            [
                f"2 ({path}): p50 < 5 ms at 20 % load",
                _fig(p50, 2, " ms"),
                _verdict(p50["median"], lambda v: v < 5),
            ]
        )
        rows.append(
            [
                f"2 ({path}): p99 < 25 ms at 20 % load",
                _fig(p99, 2, " ms"),
                _verdict(p99["median"], lambda v: v < 25),
            ]
        )
    for backend, found in scenarios.get("scale", {}).get("backends", {}).items():
        claim = found["large_over_small"]["claim_ms"]
        rss = found["large"]["peak_rss_mib"]
        rows.append(
            [
                f"5: {backend} claim at 1 M within 1.5 {TIMES} of 10 k",
                _x(claim),
                _verdict(claim["median"], lambda v: v <= 1.5),
            ]
        )
        rows.append(
            [
                f"5: {backend} worker memory < 300 MB",
                _fig(rss, 0, " MiB"),
                _verdict(rss["max"], lambda v: v * 1.048576 < 300),
            ]
        )
    out = scenarios.get("scale", {}).get("scale_out", {}).get("two_over_one")
    if out:
        rows.append(
            [
                f"5: PostgreSQL, 2 worker processes ≥ 1.6 {TIMES} one",
                _x(out),
                _verdict(out["median"], lambda v: v >= 1.6),
            ]
        )
    ingest = scenarios.get("ingest", {})
    single = ingest.get("ratios_to_hello_world", {}).get("events_sqlite")
    if single:
        rows.append(
            [
                f"2: `POST /events` ≥ 0.5 {TIMES} a Litestar hello world",
                _x(single),
                _verdict(single["median"], lambda v: v >= 0.5),
            ]
        )
    batch = ingest.get("requests_per_s", {}).get("batch_sqlite")
    if batch:
        rows.append(
            [
                "2: `POST /events/batch` ≥ 20,000 events/s into SQLite",
                _fig(batch, 0, " events/s"),
                _verdict(batch["median"], lambda v: v >= 20_000),
            ]
        )
    if not rows:
        return []
    return ["## Targets", "", *_table(["target (issues 6 and 12)", "measured", "verdict"], rows)]


def _throughput(s: dict[str, Any]) -> list[str]:
    rates, ratios = s["deliveries_per_s"], s["ratios"]
    references = [r for r in ("aiohttp", "httpx", "bare", "celery") if r in rates]
    header = ["client", "deliveries/s", *[f"÷ {_NAMES[r].split(' (')[0]}" for r in references]]
    rows = []
    for name in rates:
        row = [_NAMES.get(name, name), _fig(rates[name])]
        row += [_x(ratios[name][r]) if name in ratios else "" for r in references]
        rows.append(row)
    settings = s["settings"]
    publish = s["publish_core_api"]
    lines = [
        "## 1. Throughput",
        "",
        f"{settings['events']:,} events per round for our engine ({settings['celery_events']:,} for Celery),"
        f" each to one of {settings.get('endpoints', 1)} endpoints in turn;"
        f" {settings['concurrency']} in flight for every client;"
        f" bodies of {settings['body_bytes']:,} bytes, signed; loop: {settings['loop']}. Ratios are taken"
        " round by round.",
        "",
        *_table(header, rows),
        "Publishing through the core API (`WebhookService.publish`, 16 concurrent callers, one event"
        " each): "
        + "; ".join(f"{backend} {_num(p['events_per_s'])} events/s" for backend, p in publish.items())
        + ".",
        "",
    ]
    api_rounds = s["rounds"].get("ours_api_sqlite")
    if api_rounds:
        posted = [r["post_events_per_s"] for r in api_rounds]
        accepted = f"{_num(min(posted))}{DASH}{_num(max(posted))}"
        lines += [f"`POST /events` accepted {accepted} events/s while delivering.", ""]
    return lines


_PATHS = {
    "core": "core API: `WebhookService.publish` in the dispatcher's process (as `serve` runs them)",
    "api": "`POST /events` to `serve`, open loop from `bench.load`; latency from the request being sent",
}


def _latency(s: dict[str, Any]) -> list[str]:
    rows = []
    for path, found in s["paths"].items():
        for load, at in found["loads"].items():
            ours, floor = at["ours"], at["floor_aiohttp"]
            rows.append(
                [
                    path,
                    f"{load} of {_num(found['throughput_per_s'])}/s",
                    _fig(at["achieved_publish_rate"]),
                    _fig(ours["p50_ms"], 2),
                    _fig(ours["p90_ms"], 2),
                    _fig(ours["p99_ms"], 2),
                    _fig(ours["max_ms"], 1),
                    f"{_fig(floor['p50_ms'], 2)} / {_fig(floor['p99_ms'], 2)}",
                ]
            )
    notes = [f"- `{path}`: {_PATHS[path]}." for path in s["paths"]]
    return [
        "## 2. Latency (publish returned → receiver read the request, ms)",
        "",
        "Open-loop publishing at shares of the path's own scenario-1 throughput, one endpoint, SQLite;"
        " the floor is raw aiohttp POSTing at the same rate to the same receiver.",
        "",
        *notes,
        "",
        *_table(["path", "load", "published/s", "p50", "p90", "p99", "max", "aiohttp floor p50 / p99"], rows),
    ]


def _fanout(s: dict[str, Any]) -> list[str]:
    ratios = s["ratios"]
    reach = s["time_to_all_endpoints"]
    row = [
        _fig(s["deliveries_per_s"]),
        *[_x(ratios.get(name)) for name in ("raw aiohttp", "one endpoint (scenario 1)")],
        _fig(s["publish_ms_per_event"], 1),
        f"{_num(reach['p50_ms'])} / {_num(reach['max_ms'])}",
    ]
    settings = s["settings"]
    return [
        "## 3. Fan-out",
        "",
        f"{settings['events']} event(s), each to {settings['endpoints']:,} endpoints (distinct paths),"
        " SQLite; published one after the other while the dispatcher delivers.",
        "",
        *_table(
            [
                "deliveries/s",
                "÷ raw aiohttp",
                "÷ one endpoint",
                "publish ms/event",
                "all endpoints reached, ms p50 / max",
            ],
            [row],
        ),
    ]


def _outage(s: dict[str, Any], plot: str | None) -> list[str]:
    settings = s["settings"]
    b = s["b_latency"]
    rows = [
        [
            phase,
            _fig(b[phase]["p50_ms"], 2),
            _fig(b[phase]["p99_ms"], 2),
            _fig(b[phase]["max_ms"], 1),
        ]
        for phase in ("before", "during", "after")
    ]
    lines = [
        "## 4. Outage and recovery",
        "",
        f"{settings['rate']:g} events/s, each to endpoint A and endpoint B; A answers 503 for"
        f" {settings['outage_s']:g} s; retry delays {settings['retry_delays_s']} s.",
        "",
        f"- A's backlog at recovery: {_fig(s['a_backlog_at_recovery'])} deliveries;"
        f" all delivered {_fig(s['a_drain_after_recovery_s'], 2, ' s')} after recovery;"
        f" {_fig(s['a_failed_attempts'])} failed attempts meanwhile.",
        f"- Healthy B's p99 during the outage ÷ before: {_x(s['b_p99_during_over_before'])}"
        f" (p50: {_x(s['b_p50_during_over_before'])}).",
        "",
        *_table(["B (healthy), by publish time", "p50 ms", "p99 ms", "max ms"], rows),
    ]
    if plot:
        lines += [f"![outage and recovery]({plot})", ""]
    return lines


def _scale(s: dict[str, Any]) -> list[str]:
    settings = s["settings"]
    rows = []
    for backend, found in s["backends"].items():
        small, large, ratio = found["small"], found["large"], found["large_over_small"]
        rows.append(
            [
                backend,
                _fig(small["claim_ms"], 2),
                _fig(large["claim_ms"], 2),
                _x(ratio["claim_ms"]),
                f"{_fig(small['claim_work_ms'], 2)} / {_fig(large['claim_work_ms'], 2)}",
                f"{_fig(small['peak_rss_mib'])} / {_fig(large['peak_rss_mib'])}",
                f"{_fig(small['deliveries_per_s'])} / {_fig(large['deliveries_per_s'])}",
            ]
        )
    return [
        "## 5. Scale of the queue",
        "",
        f"{settings['small']:,} vs {settings['large']:,} pending deliveries to"
        f" {settings['endpoints']} endpoints; the worker delivers {settings['seconds']:g} s from each;"
        f" claim = a full batch of {settings['claim_batch']} as the dispatcher awaited it (the store's own"
        " work, without waiting for its thread, in the next column).",
        "",
        *_table(
            [
                "store",
                f"claim ms, {settings['small']:,}",
                f"claim ms, {settings['large']:,}",
                "large ÷ small",
                "claim work ms (small / large)",
                "peak RSS MiB (small / large)",
                "deliveries/s (small / large)",
            ],
            rows,
        ),
        *_scale_out(s),
    ]


def _scale_out(s: dict[str, Any]) -> list[str]:
    out = s.get("scale_out")
    if not out:
        return []
    rows = [
        [
            f"{label} worker process{'es' if label == 'two' else ''}",
            _fig(out[label]["deliveries_per_s"]),
            _fig(out[label]["worker_cpu_us_per_delivery"]),
            _fig(out[label]["postgres_cpu_us_per_delivery_lower_bound"]),
            _fig(out[label]["receiver_cpu_us_per_delivery"]),
            _fig(out[label]["wal_bytes_per_delivery"]),
            _fig(out[label]["load_before"], 1),
        ]
        for label in ("one", "two")
    ]
    cost = s.get("publish_cost", {})
    note = []
    if cost:
        note = [
            f"One process publishing (one event to one endpoint, 64 at once): {_fig(cost['publishes_per_s'])}"
            f" publishes/s, {_fig(cost['process_cpu_us_per_publish'])} µs of its CPU,"
            f" {_fig(cost['postgres_cpu_us_per_publish_lower_bound'])} µs of PostgreSQL's and"
            f" {_fig(cost['wal_bytes_per_publish'])} bytes of WAL per publish.",
            "",
        ]
    return [
        "### Scale-out on PostgreSQL",
        "",
        f"{out['settings']['deliveries']:,} deliveries to {out['settings']['endpoints']} endpoints;"
        f" two processes ÷ one, round by round: **{_x(out['two_over_one'])}**. Per delivery:",
        "",
        *_table(
            [
                "workers",
                "deliveries/s",
                "worker CPU µs",
                "PostgreSQL CPU µs (≥)",
                "receiver CPU µs",
                "WAL bytes",
                "load average",
            ],
            rows,
        ),
        *note,
    ]


def _ingest(s: dict[str, Any]) -> list[str]:
    names = {
        "hello_world": "Litestar hello world (JSON body decoded, nothing stored)",
        "events_sqlite": "`POST /events`, SQLite, no webhook subscribed",
        "events_sqlite_subscribed": "`POST /events`, SQLite, one webhook (delivered by the same process)",
        "events_postgres": "`POST /events`, PostgreSQL, no webhook subscribed",
        "batch_sqlite": "`POST /events/batch`, SQLite, **events/s** (see below)",
    }
    rates, ratios = s["requests_per_s"], s["ratios_to_hello_world"]
    rows = [[names.get(n, n), _fig(rates[n]), _x(ratios.get(n)) if n in ratios else "1"] for n in rates]
    settings = s["settings"]
    lines = [
        "## 6. API ingest",
        "",
        f"{settings['concurrency']} connections of a bare asyncio client, {settings['body_bytes']:,}-byte"
        f" events; {settings['server']}.",
        "",
        *_table(["server", "requests/s", "÷ hello world"], rows),
    ]
    batch = s.get("batch")
    if batch:
        lines += [
            "",
            f"`POST /events/batch`, SQLite: {batch['size']:,} of the same events per request over"
            f" {batch['connections']} connections, {batch['endpoints']} webhooks subscribed (disabled: every"
            f" delivery is created and held, none is sent by the same process); its figure is events"
            f" per second (target 20,000), its ratio events per hello-world request.",
        ]
    return lines


def markdown(report: dict[str, Any], plot: str | None = None) -> str:
    machine = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines = [
        f"# Benchmark results, {report['started']}",
        "",
        f"`{report['command']}` — {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['platform']};"
        f" {versions}. {report['sizes']['rounds']} round(s); figures are median (min{DASH}max) over rounds,"
        f" ratios are taken round by round against a reference measured back to back. Took"
        f" {report.get('elapsed_s', 0):.0f} s.",
        "",
    ]
    for what, why in report.get("skipped", {}).items():
        lines.append(f"- Skipped {what}: {why}")
    if report.get("skipped"):
        lines.append("")
    lines += _headline(report)
    scenarios = report["scenarios"]
    sections: list[tuple[str, Callable[[dict[str, Any]], list[str]]]] = [
        ("throughput", _throughput),
        ("latency", _latency),
        ("fanout", _fanout),
        ("outage", lambda s: _outage(s, plot)),
        ("scale", _scale),
        ("ingest", _ingest),
    ]
    for name, render in sections:
        if "error" in scenarios.get(name, {}):
            lines += [f"## {name}: failed", "", f"`{scenarios[name]['error']}`", ""]
        elif name in scenarios:
            lines += render(scenarios[name])
    return "\n".join(lines)


def _plot_outage(outage: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    timeline = outage["rounds"][0]["timeline"]
    step = timeline["bucket_s"]
    xs = [i * step for i in range(len(timeline["a_backlog"]))]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6.5))
    # A bucket holds a few dozen events: its p99 is its max, so the max and the median are drawn.
    for key, label in (("b_max_ms", "max"), ("b_p50_ms", "median")):
        points = [(x, y) for x, y in zip(xs, timeline[key], strict=False) if y is not None]
        top.plot([p[0] for p in points], [p[1] for p in points], label=f"healthy endpoint B, {label}")
    top.set_yscale("log")
    top.set_ylabel("latency, ms (publish → received)")
    top.legend(loc="upper right", fontsize=8)
    bottom.plot(xs, timeline["a_backlog"], label="A: published, not yet delivered", color="tab:red")
    bottom.bar(
        xs,
        timeline["a_failed"],
        width=step,
        align="edge",
        alpha=0.4,
        label="A: failed attempts",
        color="tab:gray",
    )
    bottom.bar(
        xs,
        timeline["a_succeeded"],
        width=step,
        align="edge",
        alpha=0.5,
        label="A: delivered",
        color="tab:green",
    )
    bottom.set_ylabel(f"deliveries (per {step:g} s bucket)")
    bottom.set_xlabel("seconds since publishing began")
    bottom.legend(loc="upper right", fontsize=8)
    for axis in (top, bottom):
        axis.axvspan(timeline["outage_from_s"], timeline["outage_until_s"], color="tab:red", alpha=0.08)
    settings = outage["settings"]
    fig.suptitle(
        f"Outage and recovery: A answers 503 for {settings['outage_s']:g} s (shaded); B stays healthy"
        f" ({settings['rate']:g} events/s to each)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(report: dict[str, Any], folder: Path, stamp: str) -> list[Path]:
    """Write the run's files into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stamp}.json"]
    paths[0].write_text(json.dumps(report, indent=1) + "\n")
    plot = None
    if "rounds" in report["scenarios"].get("outage", {}):
        png = folder / f"{stamp}-outage.png"
        if _plot_outage(report["scenarios"]["outage"], png):
            paths.append(png)
            plot = png.name
    md = folder / f"{stamp}.md"
    md.write_text(markdown(report, plot) + "\n")
    paths.insert(1, md)
    return paths
