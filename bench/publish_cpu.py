"""CPU per published event, in process: the figures behind ADR 0007's batch-ingest addendum.

    python -m bench.publish_cpu batch              # 10 batches of 1,000 events, 3 held deliveries each
    python -m bench.publish_cpu single --concurrency 64 --requests 5000   # POST /events, no webhook
    python -m bench.publish_cpu batch --freeze     # as ``serve`` runs: startup objects frozen
    python -m bench.publish_cpu batch --profile    # cProfile of the event loop's thread

The app is called as ASGI with raw messages (no HTTP client's CPU in the figures) over a fresh
SQLite store. It prints CPU per event of the whole process (``time.process_time``), of the event
loop's thread and of the others (``/proc/self/task``), of ``Appender.commit`` alone (the append on
the store's thread, ``time.thread_time``) and of the cyclic collector (``gc.callbacks``). Wall
time is printed too, but on a shared machine only the CPU figures compare; run A/B pairs back to
back.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import uvloop

from attribution_webhooks.adapters.sql.appending import Appender
from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.bootstrap import open_runtime
from attribution_webhooks.app.settings import Mode, Settings

from .api import batch_body, publish_body

__all__ = ["main"]

_BATCH = 1_000


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        found[tid] = (int(fields[11]) + int(fields[12])) / tick
    return found


class _Timers:
    """The append's thread time and the collector's time, summed while measuring."""

    def __init__(self) -> None:
        self.append = 0.0
        self.collector = 0.0
        self._started = 0.0
        commit = Appender.commit

        def timed(appender: Appender, jobs: Any) -> None:
            started = time.thread_time()
            try:
                commit(appender, jobs)
            finally:
                self.append += time.thread_time() - started

        Appender.commit = timed  # type: ignore[method-assign]  # measuring, in this process only
        gc.callbacks.append(self._collected)

    def _collected(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.collector += time.thread_time() - self._started

    def reset(self) -> None:
        self.append = self.collector = 0.0


def _caller(app: Any, path: str, body: bytes, key: str) -> Callable[[], Any]:
    headers = [
        (b"host", b"bench"),
        (b"x-api-key", key.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def post() -> None:
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] in (201, 202, 200), sent

    return post


async def _run(args: argparse.Namespace) -> None:
    folder = tempfile.mkdtemp(prefix="aw-publish-cpu-")
    settings = Settings(database_url=f"sqlite:///{folder}/bench.sqlite3", mode=Mode.DEVELOPMENT)
    runtime = open_runtime(settings)
    try:
        now = datetime.now(UTC)
        runtime.keys.create_account("acct_bench", "bench", now)
        _, key = runtime.keys.create_key("acct_bench", "bench", now)
        app = create_app(runtime)
        batch = args.mode == "batch"
        for n in range(args.webhooks if args.webhooks is not None else (3 if batch else 0)):
            view = await runtime.service.register_endpoint(
                "acct_bench", f"http://127.0.0.1:9/h{n}", ["deal.attributed"], "your_webhook_secret"
            )
            await runtime.service.disable_endpoint("acct_bench", view.endpoint.endpoint_id)
        path, body, per = (
            ("/events/batch", batch_body(_BATCH), _BATCH) if batch else ("/events", publish_body(), 1)
        )
        post = _caller(app, path, body, key)
        for _ in range(3 if batch else 200):
            await post()
        timers = _Timers()
        if args.freeze:
            gc.collect()
            gc.freeze()
        requests = args.requests or (10 if batch else 3000)
        left = requests

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await post()

        profile = cProfile.Profile(time.process_time) if args.profile else None
        timers.reset()
        threads, cpu, wall = _thread_cpu(), time.process_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        if profile is not None:
            profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        after = _thread_cpu()
        events = requests * per
        loop = str(os.getpid())
        spent = {tid: after[tid] - threads.get(tid, 0.0) for tid in after}
        others = sum(v for tid, v in spent.items() if tid != loop)
        print(
            f"{args.mode}: {1e6 * cpu / events:.1f} µs CPU per event ({events / wall:,.0f} events/s wall);"
            f" event loop's thread {1e6 * spent.get(loop, 0.0) / events:.1f} µs, others"
            f" {1e6 * others / events:.1f} µs; Appender.commit {1e6 * timers.append / events:.1f} µs;"
            f" collector {1e6 * timers.collector / events:.1f} µs"
        )
        if profile is not None:
            pstats.Stats(profile).sort_stats(args.sort).print_stats(40)
    finally:
        runtime.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["batch", "single"])
    parser.add_argument("--requests", type=int, help="measured requests (default: 10 batches, 3,000 singles)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    parser.add_argument(
        "--webhooks", type=int, help="disabled webhooks subscribed (default: 3 batch, 0 single)"
    )
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() first, as serve does")
    parser.add_argument("--profile", action="store_true", help="cProfile the event loop's thread")
    parser.add_argument("--sort", default="tottime", help="the profile's order (tottime, cumulative)")
    uvloop.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
