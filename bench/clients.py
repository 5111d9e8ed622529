"""How fast can each HTTP client POST signed 1 KB webhook bodies to a local keep-alive receiver?

Every client sends the same bytes (a canonical JSON body of about 1 KB and the headers the
dispatcher sends, signature included) to ``bench.receiver`` running in its own process, with
``concurrency`` requests in flight, for ``duration`` seconds after a short warm-up. Each
measurement runs in a fresh interpreter, and the rounds interleave the clients, so the machine's
noise spreads over all of them. Results are printed as JSON: the median requests per second of
the rounds, and its ratio to raw aiohttp on the default event loop in the same run::

    python -m bench.clients run --concurrency 1,16,64 --rounds 3 --duration 5 --table
    python -m bench.clients one --client aiohttp --url http://127.0.0.1:8000/hook --concurrency 16

Clients (each also as ``NAME+uvloop``, except the sync one):
``bare`` (an asyncio protocol writing prepared request bytes: the machine's ceiling),
``aiohttp`` (a raw ``ClientSession``), ``httpx`` (``AsyncClient`` on its default httpcore
transport), ``httpx-sync`` (``Client`` shared by ``concurrency`` threads), ``httpx-aiohttp``
(``AsyncClient`` over the ``httpx-aiohttp`` package's transport), ``httpx-ours`` (``AsyncClient``
over this project's aiohttp transport) and ``port`` (this project's ``HttpTransport``, the
``Transport`` port that the dispatcher calls, with classification and capped reading).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.core.endpoint import Endpoint
from attribution_webhooks.core.signing import delivery_headers
from attribution_webhooks.core.wire import encode_json

from .receiver import ReceiverOptions, run_receiver

__all__ = ["ASYNC_CLIENTS", "CLIENTS", "SECRET", "measure", "measure_in_subprocess", "signed_request"]

SECRET = "bench_secret_0123456789abcdef"
BASELINE = "aiohttp"
WARMUP = 1.0
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def signed_request(size: int = 1024) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """A canonical JSON body of about ``size`` bytes and the headers the dispatcher sends with it."""
    now = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
    data: dict[str, Any] = {
        "dealId": "deal_xyz",
        "amount": 10000,
        "model": "linear",
        "attribution": [
            {"partnerId": "partner_abc", "partnerName": "Acme Corp", "credit": 5000, "percentage": 50},
            {"partnerId": "partner_xyz", "partnerName": "XYZ Inc", "credit": 5000, "percentage": 50},
        ],
        "note": "",
    }
    envelope = {
        "id": "evt_bench",
        "type": "deal.attributed",
        "timestamp": "2024-01-20T15:00:00Z",
        "data": data,
    }
    padding = size - len(encode_json(envelope).encode())
    data["note"] = "x" * max(padding, 0)
    body = encode_json(envelope).encode()
    headers = delivery_headers(
        HmacSigner(),
        Endpoint(endpoint_id="wh_bench", secret=SECRET),
        body=body,
        event_id="evt_bench",
        event_type="deal.attributed",
        delivery_id="dlv_bench",
        attempt=1,
        now=now,
        user_agent="attribution-webhooks-bench/0.1",
    )
    return body, headers


# --- one measurement ------------------------------------------------------------------------

Send = Callable[[], Awaitable[bool]]


class _Counter:
    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.stop = False


async def _drive(send: Send, concurrency: int, duration: float, warmup: float = WARMUP) -> dict[str, float]:
    counter = _Counter()

    async def worker() -> None:
        while not counter.stop:
            try:
                ok = await send()
            except Exception:
                ok = False
            if ok:
                counter.ok += 1
            else:
                counter.errors += 1

    tasks = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    ok0, err0, t0 = counter.ok, counter.errors, time.perf_counter()
    await asyncio.sleep(duration)
    ok1, err1, t1 = counter.ok, counter.errors, time.perf_counter()
    counter.stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"rps": (ok1 - ok0) / (t1 - t0), "requests": ok1 - ok0, "errors": err1 - err0}


class _BareConnection(asyncio.Protocol):
    """One keep-alive connection that sends prepared bytes and parses just enough of the answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in bytes(self.buffer[:end]).lower().split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(self.buffer[9:12])
        del self.buffer[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))


@contextlib.asynccontextmanager
async def _bare(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    loop = asyncio.get_running_loop()
    idle: list[_BareConnection] = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(_BareConnection, host, port)
        idle.append(protocol)

    async def send() -> bool:
        connection = idle.pop()
        try:
            connection.waiter = loop.create_future()
            assert connection.transport is not None
            connection.transport.write(request)
            return await connection.waiter == 200
        finally:
            idle.append(connection)

    try:
        yield send
    finally:
        for connection in idle:
            if connection.transport is not None:
                connection.transport.close()


@contextlib.asynccontextmanager
async def _aiohttp(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def send() -> bool:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status == 200

        yield send


def _httpx_limits(concurrency: int) -> Any:
    import httpx

    return httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


@contextlib.asynccontextmanager
async def _httpx_client(client: Any, url: str, body: bytes, headers: tuple[tuple[str, str], ...]) -> Any:
    async with client:

        async def send() -> bool:
            response = await client.post(url, content=body, headers=headers)
            return bool(response.status_code == 200)

        yield send


def _httpx(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    import httpx

    client = httpx.AsyncClient(limits=_httpx_limits(concurrency))
    return _httpx_client(client, url, body, headers)


def _httpx_aiohttp(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    import httpx
    from httpx_aiohttp import AiohttpTransport

    client = httpx.AsyncClient(transport=AiohttpTransport(limits=_httpx_limits(concurrency)))
    return _httpx_client(client, url, body, headers)


def _httpx_ours(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    import httpx

    from attribution_webhooks.adapters.http import AiohttpTransport, EgressSettings

    transport = AiohttpTransport(EgressSettings(max_connections=concurrency))
    return _httpx_client(httpx.AsyncClient(transport=transport), url, body, headers)


@contextlib.asynccontextmanager
async def _port(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport
    from attribution_webhooks.core.outcomes import HttpResponse
    from attribution_webhooks.core.ports import OutboundRequest

    settings = EgressSettings(mode=EgressMode.DEVELOPMENT, max_connections=concurrency)
    request = OutboundRequest(url, headers, body, timedelta(seconds=15))
    async with HttpTransport(settings) as transport:

        async def send() -> bool:
            outcome = await transport.send(request)
            return isinstance(outcome, HttpResponse) and outcome.status == 200

        yield send


async def _worker(url: str, concurrency: int, duration: float) -> dict[str, float]:
    """Deliveries per second through the whole worker: WebhookService + Dispatcher + MemoryStore +
    HttpTransport. Events are published in the same process, keeping ``4 * concurrency`` pending."""
    from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport
    from attribution_webhooks.adapters.memory import MemoryStore
    from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator
    from attribution_webhooks.core.dispatcher import Dispatcher, DispatchSettings
    from attribution_webhooks.core.endpoint import EndpointRules
    from attribution_webhooks.core.services import NewEvent, ServiceSettings, WebhookService

    data = json.loads(signed_request()[0])["data"]
    service = WebhookService(
        MemoryStore(),
        SystemClock(),
        UlidGenerator(),
        SystemRandom(),
        ServiceSettings(endpoint_rules=EndpointRules(require_https=False)),
    )
    settings = EgressSettings(mode=EgressMode.DEVELOPMENT, max_connections=concurrency)
    async with HttpTransport(settings) as transport:
        dispatcher = Dispatcher(
            service,
            transport,
            HmacSigner(),
            DispatchSettings(
                concurrency=concurrency,
                per_endpoint_concurrency=concurrency,
                claim_batch=max(concurrency, 16),
                poll_interval=timedelta(milliseconds=50),
            ),
        )
        await service.register_endpoint("acct_bench", url, ["deal.attributed"], secret=SECRET)
        stop = asyncio.Event()
        runner = asyncio.ensure_future(dispatcher.run(stop))
        published = 0
        finished = False

        async def feed() -> None:
            nonlocal published
            while not finished:
                stats = dispatcher.stats
                if published - stats.succeeded - stats.failed_attempts < 4 * concurrency:
                    await service.publish("acct_bench", NewEvent("deal.attributed", data))
                    published += 1
                else:
                    await asyncio.sleep(0.001)

        feeder = asyncio.ensure_future(feed())
        await asyncio.sleep(WARMUP)
        ok0, err0, t0 = dispatcher.stats.succeeded, dispatcher.stats.failed_attempts, time.perf_counter()
        await asyncio.sleep(duration)
        ok1, err1, t1 = dispatcher.stats.succeeded, dispatcher.stats.failed_attempts, time.perf_counter()
        finished = True
        await feeder
        stop.set()
        await runner
    return {"rps": (ok1 - ok0) / (t1 - t0), "requests": ok1 - ok0, "errors": err1 - err0}


ASYNC_CLIENTS: dict[str, Callable[..., Any]] = {
    "bare": _bare,
    "aiohttp": _aiohttp,
    "httpx": _httpx,
    "httpx-aiohttp": _httpx_aiohttp,
    "httpx-ours": _httpx_ours,
    "port": _port,
}
CLIENTS = [
    *list(ASYNC_CLIENTS),
    "httpx-sync",
    "worker",
    "worker+uvloop",
    *[f"{name}+uvloop" for name in ASYNC_CLIENTS],
]


def _sync_httpx(url: str, concurrency: int, duration: float) -> dict[str, float]:
    import httpx

    body, headers = signed_request()
    counts = [0] * concurrency
    errors = [0] * concurrency
    stop = threading.Event()
    with httpx.Client(limits=_httpx_limits(concurrency)) as client:

        def worker(index: int) -> None:
            while not stop.is_set():
                try:
                    ok = client.post(url, content=body, headers=headers).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    counts[index] += 1
                else:
                    errors[index] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        time.sleep(WARMUP)
        ok0, err0, t0 = sum(counts), sum(errors), time.perf_counter()
        time.sleep(duration)
        ok1, err1, t1 = sum(counts), sum(errors), time.perf_counter()
        stop.set()
        for thread in threads:
            thread.join()
    return {"rps": (ok1 - ok0) / (t1 - t0), "requests": ok1 - ok0, "errors": err1 - err0}


def measure(
    client: str, url: str, concurrency: int, duration: float, warmup: float = WARMUP
) -> dict[str, float]:
    """Run one client against ``url`` in this process and return its rate (after ``warmup`` s)."""
    if client == "httpx-sync":
        return _sync_httpx(url, concurrency, duration)
    name, _, loop = client.partition("+")
    body, headers = signed_request()

    async def run() -> dict[str, float]:
        if name == "worker":
            return await _worker(url, concurrency, duration)
        async with ASYNC_CLIENTS[name](url, body, headers, concurrency) as send:
            return await _drive(send, concurrency, duration, warmup)

    loop_factory = None
    if loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(run())


# --- a whole run --------------------------------------------------------------------------------


def measure_in_subprocess(
    client: str, url: str, concurrency: int, duration: float, warmup: float = WARMUP
) -> dict[str, float]:
    """``measure`` in a fresh interpreter; a failure comes back as 0 requests/s with its stderr."""
    argv = ["one", "--client", client, "--url", url, "--concurrency", str(concurrency)]
    argv += ["--duration", str(duration), "--warmup", str(warmup)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.clients", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=_ROOT,
    )
    if done.returncode != 0:
        return {"rps": 0.0, "requests": 0, "errors": -1, "failure": done.stderr.strip()[-500:]}  # type: ignore[dict-item]
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run(
    clients: list[str],
    concurrencies: list[int],
    rounds: int,
    duration: float,
    receiver_uvloop: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure every client at every concurrency, ``rounds`` times interleaved; medians and ratios."""
    samples: dict[tuple[str, int], list[float]] = {(c, n): [] for c in clients for n in concurrencies}
    errors: dict[tuple[str, int], float] = dict.fromkeys(samples, 0)
    with run_receiver(ReceiverOptions(secret=SECRET, verify=True, uvloop=receiver_uvloop)) as receiver:
        for round_ in range(rounds):
            for concurrency in concurrencies:
                for client in clients:
                    result = measure_in_subprocess(client, receiver.url, concurrency, duration)
                    samples[client, concurrency].append(result["rps"])
                    errors[client, concurrency] += result["errors"]
                    progress(f"round {round_ + 1} c={concurrency} {client}: {result['rps']:.0f} rps")
        stats = receiver.stats()
    table: dict[str, dict[str, dict[str, float]]] = {}
    for concurrency in concurrencies:
        baseline = statistics.median(samples[BASELINE, concurrency]) if BASELINE in clients else None
        row: dict[str, dict[str, float]] = {}
        for client in clients:
            median = statistics.median(samples[client, concurrency])
            row[client] = {
                "rps": round(median),
                "ratio_to_aiohttp": round(median / baseline, 3) if baseline else float("nan"),
                "rounds": [round(x) for x in samples[client, concurrency]],  # type: ignore[dict-item]
                "errors": errors[client, concurrency],
            }
        table[str(concurrency)] = row
    return {
        "body_bytes": len(signed_request()[0]),
        "rounds": rounds,
        "duration_s": duration,
        "receiver": {"uvloop": receiver_uvloop, "bad_signatures": stats["bad_signature"]},
        "python": sys.version.split()[0],
        "results": table,
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table: requests/s (ratio to raw aiohttp) per concurrency."""
    concurrencies = list(report["results"])
    clients = list(report["results"][concurrencies[0]])
    lines = [
        "| client | " + " | ".join(f"c={c}" for c in concurrencies) + " |",
        "| --- | " + " | ".join("---:" for _ in concurrencies) + " |",
    ]
    for client in clients:
        cells = []
        for concurrency in concurrencies:
            cell = report["results"][concurrency][client]
            cells.append(f"{cell['rps']:,} ({cell['ratio_to_aiohttp']:.2f}x)")
        lines.append(f"| {client} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@contextlib.contextmanager
def _stderr_progress() -> Iterator[Callable[[str], None]]:
    yield lambda line: print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("one", help="measure one client against a running receiver")
    one.add_argument("--client", required=True, choices=CLIENTS)
    one.add_argument("--url", required=True)
    one.add_argument("--concurrency", type=int, default=16)
    one.add_argument("--duration", type=float, default=5.0)
    one.add_argument("--warmup", type=float, default=WARMUP, help="seconds not counted at the start")
    many = commands.add_parser("run", help="start a receiver and measure every client, interleaved")
    many.add_argument("--clients", default=",".join(CLIENTS))
    many.add_argument("--concurrency", default="1,16,64")
    many.add_argument("--rounds", type=int, default=3)
    many.add_argument("--duration", type=float, default=5.0)
    many.add_argument("--receiver-asyncio", action="store_true", help="run the receiver without uvloop")
    many.add_argument("--table", action="store_true", help="also print a Markdown table to stderr")
    many.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.command == "one":
        print(json.dumps(measure(args.client, args.url, args.concurrency, args.duration, args.warmup)))
        return
    with _stderr_progress() as progress:
        report = run(
            args.clients.split(","),
            [int(c) for c in args.concurrency.split(",")],
            args.rounds,
            args.duration,
            receiver_uvloop=not args.receiver_asyncio,
            progress=(lambda _: None) if args.quiet else progress,
        )
    print(json.dumps(report, indent=2))
    if args.table:
        print(markdown(report), file=sys.stderr)


if __name__ == "__main__":
    main()
