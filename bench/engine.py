"""Our side of the benchmarks: the real engine, in a process of its own.

``WebhookService`` + ``Dispatcher`` + ``HttpTransport`` over the SQL store (``open_store(url)``),
wired as the composition root wires them (development egress mode, so that it may deliver to
127.0.0.1), on uvloop when it is installed. The harness starts it with
``python -m bench.engine --db URL [settings]`` and drives it with one JSON command per line on
stdin, reading one JSON answer per line on stdout. Commands (``op``):

- ``register``: ``urls`` → the ids of endpoints registered for ``deal.attributed``.
- ``publish``: ``count`` events through ``WebhookService.publish`` (the core API), either as fast
  as ``concurrency`` publishers can, or open-loop at ``rate`` per second; with ``record`` the
  answer lists ``[event id, time.monotonic() when publish returned]`` for every event.
- ``start``: run the dispatcher. Publishing in this process wakes it, as in ``serve``.
- ``progress``: deliveries recorded as succeeded so far, and when the last one was.
- ``wait``: until ``succeeded`` deliveries are recorded (or ``within`` seconds pass).
- ``stop``: stop the dispatcher gracefully; the answer has its counters, every claim's duration
  and this process's memory.

Times are ``time.monotonic()``: one system-wide clock on Linux, which the receiver also reads, so
the harness can subtract one process's times from another's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport
from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.adapters.sql import SqlStore, open_store
from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator
from attribution_webhooks.app.runner import settle_heap
from attribution_webhooks.app.services import NewEvent, ServiceSettings, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.core.endpoint import EndpointRules
from attribution_webhooks.core.events import AttemptSucceeded
from attribution_webhooks.core.ports import StreamAppend
from attribution_webhooks.core.retry import RetryPolicy
from attribution_webhooks.core.samples import SAMPLE_DATA
from attribution_webhooks.core.views import DueDelivery

from .clients import SECRET

__all__ = ["ACCOUNT", "EVENT_TYPE", "InstrumentedStore", "event_data", "memory_kib"]

ACCOUNT = "acct_bench"
EVENT_TYPE = "deal.attributed"


def event_data(shares: int = 9) -> dict[str, Any]:
    """The ``data`` of every event the benchmarks publish: a valid ``deal.attributed`` payload
    (the spec's example with nine partners) whose delivered body is about 1 KB, like the
    reference clients' (``bench.clients.signed_request``)."""
    data = dict(SAMPLE_DATA[EVENT_TYPE])
    data["attribution"] = [
        {
            "partnerId": f"partner_{n:03d}",
            "partnerName": f"Partner {n:03d} Ltd",
            "credit": 10000 // shares,
            "percentage": round(100 / shares, 2),
        }
        for n in range(shares)
    ]
    return data


def memory_kib(pid: int | str = "self") -> dict[str, int]:
    """Resident memory now and at its peak (``VmRSS``, ``VmHWM``) of a process, in KiB."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found["rss_kib" if name == "VmRSS" else "peak_rss_kib"] = int(value.split()[0])
    except OSError:  # not Linux: the peak is all we can tell, and only of ourselves
        if pid == "self":
            found["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return found


@attrs.define(slots=False)
class _TimedSqlStore(SqlStore):
    """The SQL store, timing the claim's own work on the store's thread (the statements, the
    commit and building the ``DueDelivery`` values), apart from any wait for that thread."""

    claim_work: list[float] = attrs.field(factory=list, init=False)

    def _claim(self, now: datetime, limit: int, lease_for: timedelta) -> list[DueDelivery]:
        started = time.perf_counter()
        batch = super()._claim(now, limit, lease_for)
        if len(batch) == limit:  # a short batch is the end of the queue: another kind of query
            self.claim_work.append(time.perf_counter() - started)
        return batch


class InstrumentedStore:
    """Passes every call to the store; counts successes as they are committed and times claims."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.succeeded = 0
        self.last_success: float | None = None
        self.first_claim: float | None = None
        self.claims: list[float] = []  # seconds per full batch, as the dispatcher awaited it
        self.claim_calls = 0  # every claim, full or not

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def claim(self, now: datetime, limit: int, lease_for: timedelta) -> Sequence[DueDelivery]:
        started = time.perf_counter()
        if self.first_claim is None:
            self.first_claim = time.monotonic()
        batch = await self.store.claim(now, limit, lease_for)
        self.claim_calls += 1
        if len(batch) == limit:
            self.claims.append(time.perf_counter() - started)
        return batch

    async def append(self, *appends: StreamAppend) -> int:
        position = await self.store.append(*appends)
        succeeded = sum(isinstance(e, AttemptSucceeded) for a in appends for e in a.events)
        if succeeded:
            self.succeeded += succeeded
            self.last_success = time.monotonic()
        return position


class _Engine:
    def __init__(self, args: argparse.Namespace) -> None:
        opened = open_store(args.db, pool_size=args.pool_size)
        self.sql = _TimedSqlStore(opened.engine, opened.codec, opened.executor)
        self.store = InstrumentedStore(self.sql)
        retry = RetryPolicy(delays=[timedelta(seconds=float(d)) for d in args.retry_delays.split(",") if d])
        self.service = WebhookService(
            self.store,  # type: ignore[arg-type]  # a pass-through proxy of a Storage
            SystemClock(),
            UlidGenerator(),
            SystemRandom(),
            ServiceSettings(endpoint_rules=EndpointRules(require_https=False), retry=retry),
        )
        self.settings = DispatchSettings(
            concurrency=args.concurrency,
            per_endpoint_concurrency=args.per_endpoint,
            claim_batch=args.claim_batch,
            poll_interval=timedelta(milliseconds=args.poll_ms),
        )
        self.egress = EgressSettings(mode=EgressMode.DEVELOPMENT)
        self.transport: HttpTransport | None = None
        self.dispatcher: Dispatcher | None = None
        self.stop_event = asyncio.Event()
        self.runner: asyncio.Future[None] | None = None
        self.data = event_data()
        self.accounts = [ACCOUNT]
        self.published = 0

    async def register(self, urls: list[str], spread: bool = False) -> dict[str, Any]:
        """One endpoint per URL, in one account (every event fans out to each), or, ``spread``,
        each in an account of its own, which ``publish`` then takes in turn (one delivery per
        event, the events shared among the endpoints)."""
        ids = []
        for index, url in enumerate(urls):
            account = f"{ACCOUNT}_{index}" if spread else ACCOUNT
            view = await self.service.register_endpoint(account, url, [EVENT_TYPE], secret=SECRET)
            ids.append(view.endpoint.endpoint_id)
        if spread:
            self.accounts = [f"{ACCOUNT}_{index}" for index in range(len(urls))]
        return {"endpoints": ids}

    async def publish(
        self, count: int, concurrency: int = 16, rate: float | None = None, record: bool = False
    ) -> dict[str, Any]:
        times: list[tuple[str, float]] = []
        deliveries = 0
        slowest = 0.0

        async def one() -> None:
            nonlocal deliveries, slowest
            started = time.perf_counter()
            self.published += 1
            account = self.accounts[self.published % len(self.accounts)]
            result = await self.service.publish(account, NewEvent(EVENT_TYPE, self.data))
            slowest = max(slowest, time.perf_counter() - started)
            deliveries += len(result.delivery_ids)
            if record:
                times.append((result.event_id, time.monotonic()))

        began = time.monotonic()
        if rate:
            pending: set[asyncio.Future[None]] = set()
            for index in range(count):
                delay = began + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.ensure_future(one())
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.gather(*pending)
        else:
            numbers = iter(range(count))

            async def publisher() -> None:
                for _ in numbers:
                    await one()

            await asyncio.gather(*(publisher() for _ in range(concurrency)))
        ended = time.monotonic()
        answer: dict[str, Any] = {
            "published": count,
            "deliveries": deliveries,
            "began": began,
            "seconds": ended - began,
            "slowest_publish_s": slowest,
        }
        if record:
            answer["times"] = times
        return answer

    async def start(self) -> dict[str, Any]:
        settle_heap()  # as the CLI's processes do before they run
        self.transport = HttpTransport(self.egress)
        self.dispatcher = Dispatcher.beside(self.service, self.transport, HmacSigner(), self.settings)
        self.runner = asyncio.ensure_future(self.dispatcher.run(self.stop_event))
        return {"started": time.monotonic()}

    def progress(self) -> dict[str, Any]:
        stats = self.dispatcher.stats if self.dispatcher is not None else None
        return {
            "succeeded": self.store.succeeded,
            "last_success": self.store.last_success,
            "first_claim": self.store.first_claim,
            "attempts": stats.attempts if stats else 0,
            "failed_attempts": stats.failed_attempts if stats else 0,
            "cpu_s": time.process_time(),  # every thread of this process: the loop and the store's
            "now": time.monotonic(),
        }

    async def wait(self, succeeded: int, within: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while self.store.succeeded < succeeded and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # the end time is stamped by the store wrapper, not here
        return self.progress()

    async def stop(self) -> dict[str, Any]:
        if self.runner is not None:
            self.stop_event.set()
            await self.runner
        if self.transport is not None:
            await self.transport.aclose()
        stats = attrs.asdict(self.dispatcher.stats) if self.dispatcher is not None else {}
        return {
            **self.progress(),
            "stats": stats,
            "claim_calls": self.store.claim_calls,
            "claims_s": self.store.claims,
            "claim_work_s": self.sql.claim_work,
            **memory_kib(),
        }

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command.pop("op")
        if op == "register":
            return await self.register(**command)
        if op == "publish":
            return await self.publish(**command)
        if op == "start":
            return await self.start()
        if op == "progress":
            return self.progress()
        if op == "wait":
            return await self.wait(**command)
        if op == "stop":
            return await self.stop()
        raise ValueError(f"unknown op {op!r}")


def _say(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    engine = _Engine(args)
    _say({"ready": True, **memory_kib()})
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command.get("op") == "exit":
                break
            try:
                _say(await engine.handle(command))
            except Exception as error:  # report it to the harness, which decides
                _say({"error": f"{type(error).__name__}: {error}"})
    finally:
        if engine.runner is not None and not engine.runner.done():
            engine.runner.cancel()
            with contextlib.suppress(BaseException):
                await engine.runner
        if engine.transport is not None:
            await engine.transport.aclose()
        engine.sql.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="the store's URL")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-endpoint", type=int, default=8)
    parser.add_argument("--claim-batch", type=int, default=128)
    parser.add_argument("--poll-ms", type=float, default=500)
    parser.add_argument("--pool-size", type=int, default=4, help="PostgreSQL connections (and threads)")
    parser.add_argument(
        "--retry-delays", default="60,300,900,3600", help="seconds before each retry (default: the spec's)"
    )
    args = parser.parse_args(argv)
    factory = None
    if args.loop == "uvloop":
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(args))


if __name__ == "__main__":
    main()
