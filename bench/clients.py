"""How fast can each HTTP client POST signed 1 KB webhook bodies to a local keep-alive receiver?

Every client sends the same bytes (a canonical JSON body of about 1 KB and the headers the
dispatcher sends, signature included) to ``bench.receiver`` running in its own process, with
``concurrency`` requests in flight, for ``duration`` seconds after a short warm-up (longer if
that window holds under 200 answers, as a short one may on a loaded machine). Each
measurement runs in a fresh interpreter, and the rounds interleave the clients, so the machine's
noise spreads over all of them. Results are printed as JSON: the median requests per second of
the rounds, and its ratio to raw aiohttp on the default event loop in the same run::

    python -m bench.clients run --concurrency 1,16,64 --rounds 3 --duration 5 --table
    python -m bench.clients one --client aiohttp --url http://127.0.0.1:8000/hook --concurrency 16

Clients (each also as ``NAME+uvloop``, except the sync one):
``bare`` (an asyncio protocol writing prepared request bytes: the machine's ceiling),
``aiohttp`` (a raw ``ClientSession``), ``httpx`` (``AsyncClient`` on its default httpcore
transport), ``httpx-sync`` (``Client`` shared by ``concurrency`` threads), ``httpx-aiohttp``
(``AsyncClient`` over the ``httpx-aiohttp`` package's transport), ``port`` (this project's
``HttpTransport``, the ``Transport`` port that the dispatcher calls, with classification and
capped reading, over libcurl), ``port-httpx`` (the same port over httpx's ``AsyncClient``) and
``port-pyreqwest`` (a prototype of the port over pyreqwest, measured only; it predates the
port's ``exchange.Client`` interface and needs porting to it before it runs again); ``worker``
and ``worker-httpx`` (the whole delivery path in one process, over libcurl or httpx). The
project's aiohttp adapter is gone (ADR 0005, third addendum); raw aiohttp stays as the baseline.

Candidates for the client under the port (ADR 0005's second addendum), raw, each with redirects
and cookies off: ``aiohttp-tuned`` (aiohttp with every optional step off and prepared inputs),
``pycurl`` (libcurl's multi interface on the event loop, with a minimal driver of our own),
``pycurl-async`` (the same with pycurl's own ``AsyncCurlMulti``), ``curl_cffi`` (its
``AsyncSession``), ``pyreqwest``, ``pyqwest``, ``rnet``, ``httpr``, ``primp`` (Rust clients),
``aiosonic`` and ``niquests``. Only pycurl is a dependency of the service; install the others
by hand to measure them (a missing one measures as 0 requests/s with the import error). Besides
requests/s, each measurement reports the client process's CPU time per request (all its
threads, so work a client moves to threads of its own counts too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
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
DASH = "\u2013"  # en dash, for the tables
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


_MIN_COUNTED = 200  # answers a measurement window holds at least (see ``_drive``)


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
    ok0, err0, t0, cpu0 = counter.ok, counter.errors, time.perf_counter(), time.process_time()
    await asyncio.sleep(duration)
    # A short window on a loaded machine may count nothing (``--quick``: 0.5 s): it is stretched
    # until it holds ``_MIN_COUNTED`` answers, for at most ten times its length.
    stretched = t0 + max(10 * duration, duration + 5)
    while counter.ok - ok0 < _MIN_COUNTED and time.perf_counter() < stretched:
        await asyncio.sleep(0.05)
    ok1, err1, t1, cpu1 = counter.ok, counter.errors, time.perf_counter(), time.process_time()
    counter.stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return _rate(ok1 - ok0, err1 - err0, t1 - t0, cpu1 - cpu0)


def _rate(requests: int, errors: int, wall: float, cpu: float) -> dict[str, float]:
    """Requests per second, and the client process's CPU time (every thread) per request in µs."""
    return {
        "rps": requests / wall,
        "requests": requests,
        "errors": errors,
        "cpu_us": cpu / requests * 1e6 if requests else 0.0,
        "cpu_share": cpu / wall,  # 1.0 is one core busy; above 1 the client used more than one
    }


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


def _port_with(client: str | None) -> Callable[..., Any]:
    """``HttpTransport.send()`` over libcurl (the default), httpx, or the pyreqwest prototype."""

    @contextlib.asynccontextmanager
    async def port(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
        from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport
        from attribution_webhooks.core.outcomes import HttpResponse
        from attribution_webhooks.core.ports import OutboundRequest

        settings = EgressSettings(mode=EgressMode.DEVELOPMENT, max_connections=concurrency)
        if client == "httpx":
            settings = EgressSettings(mode=EgressMode.DEVELOPMENT, max_connections=concurrency, client=client)
        engine = _pyreqwest_engine(settings) if client == "pyreqwest" else None
        request = OutboundRequest(url, headers, body, timedelta(seconds=15))
        async with HttpTransport(settings, transport=engine) as transport:

            async def send() -> bool:
                outcome = await transport.send(request)
                return isinstance(outcome, HttpResponse) and outcome.status == 200

            yield send

    return port


def _pyreqwest_engine(settings: Any) -> Any:
    """A prototype, for measuring only: pyreqwest behind the port, with the same body limits and
    header lookups as the libcurl engine. It cannot pin a request to a vetted address (reqwest
    resolves names itself; ``ClientBuilder.resolve`` is per client), so it is no candidate for
    production mode; the egress check and classification are left out."""

    from attribution_webhooks.adapters.http.curl_transport import CurlAnswer, CurlTransport

    class Answer(CurlAnswer):
        __slots__ = ("headers",)

        def header(self, name: str) -> str | None:
            value: str | None = self.headers.get(name)
            return value

        def mentions(self, fragment: bytes) -> bool:
            return True  # no header lines kept here: read the headers themselves

    class Engine(CurlTransport):
        def __init__(self) -> None:
            super().__init__(settings)
            builder = _pyreqwest_builder(settings.max_connections)
            self._client = builder.connect_timeout(settings.connect_timeout).build()

        async def exchange(
            self, url: str, headers: Any, body: bytes, total: float, connect: float
        ) -> CurlAnswer:
            answer = Answer(settings.log_body_limit, settings.read_body_limit)
            builder = self._client.post(url).headers(headers).body_bytes(body)
            request = builder.timeout(timedelta(seconds=total)).build_streamed()
            async with request as response:
                answer.status = response.status
                answer.headers = response.headers
                reader = response.body_reader
                while (chunk := await reader.read_chunk()) is not None:
                    if answer.write(bytes(chunk)) == 0:
                        break
            return answer

        async def aclose(self) -> None:
            await self._client.close()

    return Engine()


# --- candidate clients (ADR 0005's addendum: what could sit under the port instead of aiohttp) --
# Each is used raw, as its documentation shows, with what the port would need anyway: redirects
# off, no cookie store, no decompression where it can be turned off, the whole body read.


def _header_dict(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(headers)


@contextlib.asynccontextmanager
async def _aiohttp_tuned(
    url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int
) -> Any:
    """aiohttp with everything optional turned off and the per-request inputs prepared once."""
    import aiohttp
    from multidict import CIMultiDict
    from yarl import URL

    prepared = CIMultiDict(headers)
    target = URL(url, encoded=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=15)
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=False)
    async with aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        raise_for_status=False,
        trust_env=False,
        requote_redirect_url=False,
        timeout=timeout,
    ) as session:

        async def send() -> bool:
            response = await session._request(
                "POST", target, data=body, headers=prepared, allow_redirects=False, compress=None
            )
            try:
                await response.read()
                return response.status == 200
            finally:
                response.release()

        yield send


def _pyreqwest_builder(connections: int) -> Any:
    """A pyreqwest client that follows no redirects, decompresses nothing, sends no Referer."""
    from pyreqwest.client import ClientBuilder

    builder = ClientBuilder().follow_redirects(False).gzip(False).brotli(False).zstd(False)
    return builder.deflate(False).referer(False).max_connections(connections)


@contextlib.asynccontextmanager
async def _pyreqwest(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:

    prepared = _header_dict(headers)
    async with _pyreqwest_builder(concurrency).build() as client:

        async def send() -> bool:
            response = await client.post(url).headers(prepared).body_bytes(body).build().send()
            await response.bytes()
            return response.status == 200

        yield send


@contextlib.asynccontextmanager
async def _pyqwest(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    from pyqwest import Client, HTTPTransport

    transport = HTTPTransport(
        follow_redirects=False,
        enable_gzip=False,
        enable_brotli=False,
        enable_zstd=False,
        enable_otel=False,
        pool_max_idle_per_host=concurrency,
    )
    async with transport:
        client = Client(transport)

        async def send() -> bool:
            response = await client.post(url, headers, body)
            return response.status == 200

        yield send


@contextlib.asynccontextmanager
async def _rnet(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    import rnet

    prepared = _header_dict(headers)
    client = rnet.Client(
        allow_redirects=False,
        cookie_store=False,
        referer=False,
        gzip=False,
        brotli=False,
        deflate=False,
        zstd=False,
        pool_max_size=concurrency,
        pool_max_idle_per_host=concurrency,
    )

    async def send() -> bool:
        response = await client.post(url, headers=prepared, body=body)
        await response.bytes()
        return bool(response.status == 200)

    yield send


def _requests_style(module: str) -> Callable[..., Any]:
    """httpr and primp: the same ``AsyncClient`` API (httpr's runs its blocking client in threads)."""

    @contextlib.asynccontextmanager
    async def client(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
        factory = importlib.import_module(module).AsyncClient
        prepared = _header_dict(headers)
        async with factory(follow_redirects=False, cookie_store=False, referer=False) as session:

            async def send() -> bool:
                response = await session.post(url, content=body, headers=prepared)
                return bool(response.status_code == 200)

            yield send

    return client


@contextlib.asynccontextmanager
async def _curl_cffi(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    from curl_cffi.requests import AsyncSession

    prepared = _header_dict(headers)
    async with AsyncSession(max_clients=concurrency, allow_redirects=False) as session:

        async def send() -> bool:
            response = await session.post(
                url, data=body, headers=prepared, discard_cookies=True, accept_encoding=None
            )
            return bool(response.status_code == 200)

        yield send


class _CurlMulti:
    """libcurl's multi interface on the running event loop (pycurl has no asyncio glue of its own)."""

    def __init__(self) -> None:
        import pycurl

        self._pycurl = pycurl
        self.loop = asyncio.get_running_loop()
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._timer: asyncio.TimerHandle | None = None
        self._watched: dict[int, int] = {}
        self.waiters: dict[Any, asyncio.Future[int]] = {}

    def _on_socket(self, what: int, fd: int, multi: Any, data: Any) -> None:
        pycurl = self._pycurl
        old = self._watched.pop(fd, 0)
        if old & pycurl.POLL_IN:
            self.loop.remove_reader(fd)
        if old & pycurl.POLL_OUT:
            self.loop.remove_writer(fd)
        if what == pycurl.POLL_REMOVE:
            return
        if what & pycurl.POLL_IN:
            self.loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if what & pycurl.POLL_OUT:
            self.loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        self._watched[fd] = what

    def _on_timer(self, ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if ms >= 0:
            self._timer = self.loop.call_later(ms / 1000, self._act, self._pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, event: int) -> None:
        while self.multi.socket_action(fd, event)[0] == self._pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, ok, failed = self.multi.info_read()
            for handle in ok:
                self.multi.remove_handle(handle)
                self.waiters.pop(handle).set_result(0)
            for handle, code, message in failed:
                self.multi.remove_handle(handle)
                self.waiters.pop(handle).set_exception(self._pycurl.error(code, message))
            if not queued:
                break

    async def perform(self, handle: Any) -> None:
        """Run one transfer; raises ``pycurl.error`` as ``pycurl.AsyncCurlMulti.perform`` does."""
        future = self.loop.create_future()
        self.waiters[handle] = future
        self.multi.add_handle(handle)
        await future

    async def aclose(self) -> None:
        self.multi.close()


def _pycurl_on(driver: str) -> Callable[..., Any]:
    """pycurl driven by our minimal ``_CurlMulti`` (``own``) or by ``pycurl.AsyncCurlMulti``."""

    @contextlib.asynccontextmanager
    async def client(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
        import pycurl

        multi = _CurlMulti() if driver == "own" else pycurl.AsyncCurlMulti()
        # "Expect:" stops libcurl's 100-continue round trip for bodies over 1 KB.
        lines = [f"{name}: {value}" for name, value in headers] + ["Expect:"]
        idle = []
        for _ in range(concurrency):
            handle = pycurl.Curl()
            handle.setopt(pycurl.NOSIGNAL, 1)
            idle.append(handle)

        async def send() -> bool:
            handle = idle.pop()
            chunks: list[bytes] = []
            try:
                handle.setopt(pycurl.URL, url)
                handle.setopt(pycurl.HTTPHEADER, lines)
                handle.setopt(pycurl.POSTFIELDS, body)
                handle.setopt(pycurl.WRITEFUNCTION, chunks.append)
                await multi.perform(handle)
                return bool(handle.getinfo(pycurl.RESPONSE_CODE) == 200)
            finally:
                idle.append(handle)

        try:
            yield send
        finally:
            await multi.aclose()
            for handle in idle:
                handle.close()

    return client


@contextlib.asynccontextmanager
async def _aiosonic(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    import aiosonic
    from aiosonic.connectors import TCPConnector
    from aiosonic.pools import PoolConfig

    prepared = _header_dict(headers)
    connector = TCPConnector(pool_configs={":default": PoolConfig(size=concurrency, max_conn_requests=None)})
    client = aiosonic.HTTPClient(connector=connector)

    async def send() -> bool:
        response = await client.post(url, data=body, headers=prepared, follow=False)
        await response.content()
        return bool(response.status_code == 200)

    try:
        yield send
    finally:
        await connector.cleanup()


@contextlib.asynccontextmanager
async def _niquests(url: str, body: bytes, headers: tuple[tuple[str, str], ...], concurrency: int) -> Any:
    import niquests

    prepared = _header_dict(headers)
    async with niquests.AsyncSession(pool_maxsize=concurrency, disable_http2=True, disable_http3=True) as s:

        async def send() -> bool:
            response = await s.post(url, data=body, headers=prepared, allow_redirects=False)
            return bool(response.status_code == 200)

        yield send


async def _worker(url: str, concurrency: int, duration: float, client: str = "curl") -> dict[str, float]:
    """Deliveries per second through the whole worker: WebhookService + Dispatcher + MemoryStore +
    HttpTransport (over ``client``). Events are published in the same process, keeping
    ``4 * concurrency`` pending."""
    from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport
    from attribution_webhooks.adapters.memory import MemoryStore
    from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator
    from attribution_webhooks.app.services import NewEvent, ServiceSettings, WebhookService
    from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
    from attribution_webhooks.core.endpoint import EndpointRules

    data = json.loads(signed_request()[0])["data"]
    service = WebhookService(
        MemoryStore(),
        SystemClock(),
        UlidGenerator(),
        SystemRandom(),
        ServiceSettings(endpoint_rules=EndpointRules(require_https=False)),
    )
    settings = EgressSettings(mode=EgressMode.DEVELOPMENT, max_connections=concurrency, client=client)
    async with HttpTransport(settings) as transport:
        dispatcher = Dispatcher.beside(
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
        stats = dispatcher.stats
        ok0, err0, t0, cpu0 = stats.succeeded, stats.failed_attempts, time.perf_counter(), time.process_time()
        await asyncio.sleep(duration)
        ok1, err1, t1, cpu1 = stats.succeeded, stats.failed_attempts, time.perf_counter(), time.process_time()
        finished = True
        await feeder
        stop.set()
        await runner
    return _rate(ok1 - ok0, err1 - err0, t1 - t0, cpu1 - cpu0)


ASYNC_CLIENTS: dict[str, Callable[..., Any]] = {
    "bare": _bare,
    "aiohttp": _aiohttp,
    "httpx": _httpx,
    "httpx-aiohttp": _httpx_aiohttp,
    "port": _port_with(None),
    "port-httpx": _port_with("httpx"),
    "port-pyreqwest": _port_with("pyreqwest"),
    "aiohttp-tuned": _aiohttp_tuned,
    "pyreqwest": _pyreqwest,
    "pyqwest": _pyqwest,
    "rnet": _rnet,
    "httpr": _requests_style("httpr"),
    "primp": _requests_style("primp"),
    "curl_cffi": _curl_cffi,
    "pycurl": _pycurl_on("own"),
    "pycurl-async": _pycurl_on("AsyncCurlMulti"),
    "aiosonic": _aiosonic,
    "niquests": _niquests,
}
CLIENTS = [
    *list(ASYNC_CLIENTS),
    "httpx-sync",
    "worker",
    "worker+uvloop",
    "worker-httpx",
    "worker-httpx+uvloop",
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
        ok0, err0, t0, cpu0 = sum(counts), sum(errors), time.perf_counter(), time.process_time()
        time.sleep(duration)
        ok1, err1, t1, cpu1 = sum(counts), sum(errors), time.perf_counter(), time.process_time()
        stop.set()
        for thread in threads:
            thread.join()
    return _rate(ok1 - ok0, err1 - err0, t1 - t0, cpu1 - cpu0)


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
        if name == "worker-httpx":
            return await _worker(url, concurrency, duration, "httpx")
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
    """Measure every client at every concurrency, ``rounds`` times interleaved; medians and ratios.

    A ratio is taken per round (against raw aiohttp measured in the same round) and its median
    reported with min and max, so the drift between rounds cancels (ADR 0007)."""
    keys = [(c, n) for c in clients for n in concurrencies]
    rates: dict[tuple[str, int], list[float]] = {key: [] for key in keys}
    cpus: dict[tuple[str, int], list[float]] = {key: [] for key in keys}
    errors: dict[tuple[str, int], float] = dict.fromkeys(keys, 0)
    failures: dict[tuple[str, int], str] = {}
    with run_receiver(ReceiverOptions(secret=SECRET, verify=True, uvloop=receiver_uvloop)) as receiver:
        for round_ in range(rounds):
            for concurrency in concurrencies:
                for client in clients:
                    result = measure_in_subprocess(client, receiver.url, concurrency, duration)
                    rates[client, concurrency].append(result["rps"])
                    cpus[client, concurrency].append(result.get("cpu_us", 0.0))
                    errors[client, concurrency] += result["errors"]
                    if "failure" in result:
                        failures[client, concurrency] = str(result["failure"])
                    progress(
                        f"round {round_ + 1} c={concurrency} {client}: {result['rps']:.0f} rps, "
                        f"{result.get('cpu_us', 0.0):.0f} µs CPU/request"
                    )
        stats = receiver.stats()
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for concurrency in concurrencies:
        row: dict[str, dict[str, Any]] = {}
        for client in clients:
            key = (client, concurrency)
            cell: dict[str, Any] = {
                "rps": round(statistics.median(rates[key])),
                "rounds": [round(x) for x in rates[key]],
                "cpu_us": round(statistics.median(cpus[key]), 1),
                "cpu_us_rounds": [round(x, 1) for x in cpus[key]],
                "errors": errors[key],
            }
            if BASELINE in clients:
                paired = zip(rates[key], rates[BASELINE, concurrency], strict=True)
                ratios = [mine / base if base else float("nan") for mine, base in paired]
                cpu_paired = zip(cpus[key], cpus[BASELINE, concurrency], strict=True)
                cpu_ratios = [mine / base if base else float("nan") for mine, base in cpu_paired]
                cell["ratio_to_aiohttp"] = round(statistics.median(ratios), 3)
                cell["ratio_rounds"] = [round(x, 3) for x in ratios]
                cell["cpu_ratio_to_aiohttp"] = round(statistics.median(cpu_ratios), 3)
            if key in failures:
                cell["failure"] = failures[key]
            row[client] = cell
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
    """The report as a Markdown table per concurrency: requests/s and CPU µs per request, each with
    its ratio to raw aiohttp (median of the per-round ratios, with min and max)."""
    lines = []
    for concurrency, row in report["results"].items():
        lines += [
            f"c={concurrency}:",
            "",
            f"| client | requests/s | ÷ raw aiohttp (min{DASH}max) | CPU µs/request | ÷ raw aiohttp |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for client, cell in row.items():
            ratios = cell.get("ratio_rounds") or [float("nan")]
            lines.append(
                f"| {client} | {cell['rps']:,} | {cell.get('ratio_to_aiohttp', float('nan')):.2f}x "
                f"({min(ratios):.2f}{DASH}{max(ratios):.2f}) | {cell['cpu_us']:.0f} "
                f"| {cell.get('cpu_ratio_to_aiohttp', float('nan')):.2f}x |"
            )
        lines.append("")
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
