"""Where the time goes: py-spy profiles of our processes in the scenarios that miss their targets.

    python -m bench.profiles drain      # scenario 1: the worker delivering a SQLite backlog
    python -m bench.profiles publish    # the core API's publish (16 concurrent callers), SQLite
    python -m bench.profiles latency    # scenario 2: publishing at a fixed rate while delivering
    python -m bench.profiles ingest     # scenario 6: serve answering POST /events (no webhook)
    python -m bench.profiles claim      # scenario 5: the claim query's plan at 10 k and 1 M rows

Each (but ``claim``) samples one of our processes during the measured phase with py-spy
(``pip install py-spy``; it attaches by pid, so it may need ptrace rights), every thread, idle
time left out, without pausing the process. It prints the share of samples per layer (the HTTP
client, the store, the dispatcher, the event loop's own C code...) per thread, and the functions
that take the most; ``--raw FILE`` keeps py-spy's folded stacks for a flame graph. ``claim`` runs
``EXPLAIN ANALYZE`` of the claim's query on PostgreSQL and times the claim's parts on both stores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .databases import DEFAULT_POSTGRES
from .harness import QUICK, Run, open_run
from .processes import interrupt_on_sigterm

__all__ = ["layers", "main"]

# Which layer a stack's time belongs to: the first of these found walking from the leaf up.
_LAYERS: tuple[tuple[str, str], ...] = (
    ("signing (hmac)", r"adapters/signing|core/signing|\bhmac\.py"),
    ("httpx objects (Request, Response, client)", r"\bhttpx/"),
    ("aiohttp client", r"\baiohttp/|\baiohappyeyeballs/|\bmultidict/|\byarl/"),
    ("our HTTP adapter (transport, classify)", r"adapters/http/"),
    ("SQLAlchemy Core (compile, execute, rows)", r"\bsqlalchemy/"),
    ("sqlite3 / psycopg driver", r"\bsqlite3/|\bpsycopg/"),
    ("store: projection", r"adapters/sql/projection"),
    ("store: codec (cattrs, json)", r"adapters/sql/codec|\bcattrs/|\bjson/"),
    ("store: other", r"adapters/sql/"),
    (
        "API: Litestar, uvicorn, payload checks",
        r"\blitestar/|\buvicorn/|\bmsgspec/|adapters/payloads|app/api/",
    ),
    ("worker: dispatcher", r"app/worker/dispatcher"),
    ("core: services, aggregates, wire", r"core/"),
    ("ids, clock", r"adapters/system"),
    ("asyncio (tasks, timeouts), thread hand-offs", r"\basyncio/(?!run)|concurrent/futures|\bthreading\."),
    ("benchmark instrumentation", r"InstrumentedStore|_TimedSqlStore|_Engine\.(wait|progress)"),
)
_LOOP = "event loop's own C code (uvloop: sockets, callbacks)"


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in _LAYERS:
            if re.search(pattern, frame):
                return name
    return _LOOP


def layers(raw: Path, top: int = 15) -> dict[str, Any]:
    """Summarise py-spy's ``--format raw`` output: samples per thread and layer, top functions."""
    threads: Counter[str] = Counter()
    by_layer: dict[str, Counter[str]] = defaultdict(Counter)
    own: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        thread = re.sub(r"^thread\s*(\(\w+\))?:?\s*", "", frames[0]).strip() or "?"
        thread = "store thread" if thread.startswith("aw-store") else thread
        samples = int(count)
        threads[thread] += samples
        by_layer[thread][_layer(frames[1:])] += samples
        own[re.sub(r":\d+\)", ")", frames[-1])] += samples
    total = sum(threads.values()) or 1
    return {
        "samples": total,
        "threads": {
            thread: {
                "share": n / total,
                "layers": {layer: c / total for layer, c in by_layer[thread].most_common()},
            }
            for thread, n in threads.most_common()
        },
        "top_functions": [(name, n / total) for name, n in own.most_common(top)],
    }


def _print(summary: dict[str, Any], label: str) -> None:
    print(f"\n{label}\n{summary['samples']:,} samples of the thread holding the GIL:")
    for thread, found in summary["threads"].items():
        if found["share"] < 0.005:
            continue
        print(f"  {thread}: {found['share']:.0%}")
        for layer, share in found["layers"].items():
            if share >= 0.005:
                print(f"    {share:6.1%}  {layer}")
    print("  functions with the most samples of their own:")
    for name, share in summary["top_functions"]:
        print(f"    {share:6.1%}  {name}")


@contextlib.contextmanager
def _py_spy(pid: int, raw: Path) -> Iterator[None]:
    tool = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if tool is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    # --gil: only the thread holding the GIL is sampled, so the shares are of the Python CPU time
    # (a thread waiting for the GIL, or in sqlite3 without it, is not counted).
    argv = [tool, "record", "--pid", str(pid), "--rate", "250", "--threads", "--gil", "--nonblocking"]
    spy = subprocess.Popen(
        [*argv, "--format", "raw", "--output", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        _, errors = spy.communicate(timeout=60)
        if not raw.exists():
            raise SystemExit(f"py-spy recorded nothing: {errors.decode(errors='replace')[-500:]}")


def _drain(run: Run, raw: Path, count: int) -> str:
    from .throughput import PATH, publish_backlog

    publish_backlog(run, "p-publish", run.sqlite.fresh("p_template"), count)
    engine = run.engine(
        "p-drain", run.sqlite.copy("p_template", "p_round"), per_endpoint=run.sizes.concurrency
    )
    try:
        cpu = engine.call("progress")["cpu_s"]
        with _py_spy(engine.pid, raw):
            started = engine.call("start")["started"]
            done = engine.call("wait", succeeded=count, within=600, timeout=630)
        final = engine.call("stop")
    finally:
        engine.close()
    seconds = done["last_success"] - started
    busy = (final["cpu_s"] - cpu) / (final["now"] - started)
    return (
        f"drain of {count:,} deliveries to {PATH} on SQLite: {count / seconds:,.0f}/s,"
        f" {1e6 * (final['cpu_s'] - cpu) / count:,.0f} µs of CPU per delivery, process busy {busy:.0%}"
    )


def _publish(run: Run, raw: Path, count: int) -> str:
    engine = run.engine("p-publish", run.sqlite.fresh("p_publish"))
    try:
        engine.call("register", urls=[run.base_url + "/p"])
        cpu = engine.call("progress")["cpu_s"]
        with _py_spy(engine.pid, raw):
            published = engine.call("publish", count=count, concurrency=16, timeout=600)
        final = engine.call("stop")
    finally:
        engine.close()
    return (
        f"publish of {count:,} events on SQLite: {count / published['seconds']:,.0f}/s,"
        f" {1e6 * (final['cpu_s'] - cpu) / count:,.0f} µs of CPU per publish"
    )


def _latency(run: Run, raw: Path, rate: float, seconds: float) -> str:
    from .latency import PATH

    count = round(rate * seconds)
    engine = run.engine("p-latency", run.sqlite.fresh("p_latency"), per_endpoint=run.sizes.concurrency)
    try:
        engine.call("register", urls=[run.base_url + PATH])
        engine.call("start")
        cpu = engine.call("progress")["cpu_s"]
        with _py_spy(engine.pid, raw):
            published = engine.call("publish", count=count, rate=rate, timeout=seconds + 120)
            engine.call("wait", succeeded=count, within=120, timeout=150)
        final = engine.call("stop")
    finally:
        engine.close()
    busy = (final["cpu_s"] - cpu) / (final["now"] - published["began"])
    return (
        f"publishing at {rate:,.0f}/s while delivering (SQLite):"
        f" achieved {count / published['seconds']:,.0f}/s,"
        f" {1e6 * (final['cpu_s'] - cpu) / count:,.0f} µs of CPU per event (publish + delivery),"
        f" process busy {busy:.0%}"
    )


def _ingest(run: Run, raw: Path, seconds: float) -> str:
    from . import api

    server = api.start_serve(run, "p-serve", run.sqlite.fresh("p_serve"))
    try:
        with _py_spy(server.process.pid, raw):
            result = api.load(
                run,
                "p-load",
                server.url + "/events",
                api.publish_body(),
                server.headers,
                concurrency=64,
                duration=seconds,
                warmup=0.5,
            )
    finally:
        run.supervisor.stop(server.process, grace=30)
    return f"POST /events on serve (SQLite, no webhook): {result['rps']:,.0f} requests/s"


def _claim(run: Run, count: int) -> None:
    """The claim on both stores at two sizes, and on PostgreSQL its plan (``EXPLAIN ANALYZE`` of
    the store's own claim statement, rolled back)."""
    import psycopg

    from attribution_webhooks.adapters.sql import open_store
    from attribution_webhooks.adapters.sql.statements import postgres_statements

    from . import backlog

    now = datetime.now(UTC) + timedelta(hours=1)
    for backend in ("sqlite", "postgres"):
        if backend == "postgres" and run.postgres is None:
            print("PostgreSQL skipped:", run.skipped.get("postgres"))
            continue
        for size in (10_000, count):
            url = run.sqlite.fresh("p_claim") if backend == "sqlite" else run.postgres.fresh("p_claim")  # type: ignore[union-attr]
            backlog.fill(url, run.base_url, size)
            if backend == "postgres":
                run.postgres.analyze("p_claim")  # type: ignore[union-attr]
                dsn = url.replace("postgresql+psycopg://", "postgresql://")
                with psycopg.connect(dsn) as conn:
                    params = (now, 128, now + timedelta(minutes=5), "lease-for-explain")
                    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + postgres_statements.claim, params)
                    plan = [row[0] for row in rows]
                    conn.rollback()
                print(f"\nPostgreSQL, {size:,} pending: EXPLAIN ANALYZE of the claim (128 rows, rolled back)")
                print("\n".join("  " + line for line in plan))
            store = open_store(url, inline=True)
            timings: list[float] = []
            for _ in range(20):
                started = time.perf_counter()
                asyncio.run(store.claim(now, 128, timedelta(minutes=5)))
                timings.append(time.perf_counter() - started)
            store.close()
            print(
                f"{backend}, {size:,} pending: claim of 128 median {1000 * statistics.median(timings):.2f} ms"
            )
            if backend == "sqlite":
                run.sqlite.drop("p_claim")
            else:
                run.postgres.drop("p_claim")  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profiles",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=["drain", "publish", "latency", "ingest", "claim"])
    parser.add_argument("--count", type=int, default=10_000, help="deliveries, events, or claim rows")
    parser.add_argument("--rate", type=float, default=400.0, help="latency: events per second")
    parser.add_argument("--seconds", type=float, default=8.0, help="latency, ingest: how long")
    parser.add_argument("--raw", type=Path, help="keep py-spy's folded stacks here")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    args = parser.parse_args(argv)
    with (
        interrupt_on_sigterm(),
        open_run(QUICK, quick=False, postgres_url=args.postgres, redis_url=None) as run,
    ):
        raw = args.raw or run.work / "profile.raw"
        if args.what == "claim":
            _claim(run, args.count if args.count > 10_000 else 1_000_000)
            return 0
        if args.what == "drain":
            label = _drain(run, raw, args.count)
        elif args.what == "publish":
            label = _publish(run, raw, args.count)
        elif args.what == "latency":
            label = _latency(run, raw, args.rate, args.seconds)
        else:
            label = _ingest(run, raw, args.seconds)
        _print(layers(raw), label)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
