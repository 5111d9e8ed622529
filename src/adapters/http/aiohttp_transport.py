"""An httpx transport that sends through aiohttp (ADR 0005); since the second addendum, the
fallback to libcurl (``EgressSettings.client``) and a transport for any ``httpx.AsyncClient``.

httpx is the API the code sees; its default transport (httpcore) is several times slower than
aiohttp under concurrency, so requests go out through one ``aiohttp.ClientSession``. aiohttp's
exceptions come back as httpx's (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``,
``RemoteProtocolError``, ...) with the original chained as ``__cause__``, so callers catch
``httpx.HTTPError`` and ``classify`` still sees the operating system's error.

New connections resolve their host through ``resolve_vetted``: the addresses aiohttp connects to
are exactly the ones the egress policy has just approved (no check-then-use gap). Keep-alive
connections in the pool were vetted when they were opened.
"""

from __future__ import annotations

import contextvars
import socket
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import certifi
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.tracing import Trace
from yarl import URL

from .egress import BlockedTarget, Lookup, resolve_vetted, system_lookup
from .settings import EgressSettings

__all__ = ["AiohttpAnswer", "AiohttpTransport", "Progress", "track_progress"]


class Progress:
    """How far the current exchange got: set by the transport, read when the deadline strikes."""

    __slots__ = ("connected",)

    def __init__(self) -> None:
        self.connected = False


_progress: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("http_progress", default=None)


def track_progress() -> Progress:
    """Start tracking the exchange that the current task is about to make."""
    progress = Progress()
    _progress.set(progress)
    return progress


def ssl_context(settings: EgressSettings) -> ssl.SSLContext:
    """Verify certificates against ``ca_file`` or certifi's bundle; TLS 1.2 at least."""
    context = ssl.create_default_context(cafile=settings.ca_file or certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _VettingResolver(AbstractResolver):
    """Resolves through ``resolve_vetted``; the proxy's own host is exempt from the policy."""

    def __init__(self, settings: EgressSettings, lookup: Lookup, exempt: frozenset[str]) -> None:
        self._settings = settings
        self._lookup = lookup
        self._exempt = exempt

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host in self._exempt:
            answers = await self._lookup(host, port)
        else:
            answers = await resolve_vetted(host, port, self._settings, self._lookup)
        return [
            ResolveResult(hostname=host, host=address, port=port, family=fam, proto=0, flags=0)
            for fam, address in answers
        ]

    async def close(self) -> None:
        return None


class _TrackingConnector(aiohttp.TCPConnector):
    async def connect(self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout) -> Any:
        connection = await super().connect(req, traces, timeout)
        progress = _progress.get()
        if progress is not None:
            progress.connected = True
        return connection


class AiohttpAnswer:
    """A response being read: its status, its headers, its body in chunks. Errors while reading
    come out as httpx's, like everywhere else in this package."""

    __slots__ = ("response", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.status = response.status

    def header(self, name: str) -> str | None:
        return self.response.headers.get(name)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as error:
            raise _to_httpx(error) from error

    async def aclose(self) -> None:
        # release() pools the connection when the body was read to its end; close() drops it.
        if self.response.content.at_eof():
            self.response.release()
        else:
            self.response.close()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, answer: AiohttpAnswer) -> None:
        self._answer = answer

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._answer.chunks()

    async def aclose(self) -> None:
        await self._answer.aclose()


def _to_httpx(error: BaseException) -> httpx.TransportError:
    """The httpx exception that matches an aiohttp or socket error (the caller chains it)."""
    message = str(error) or type(error).__name__
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(error, aiohttp.SocketTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(error, aiohttp.ServerTimeoutError):
        return httpx.TimeoutException(message)
    if isinstance(error, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return httpx.ProxyError(message)
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    if isinstance(error, aiohttp.ClientPayloadError):
        return httpx.ReadError(message)
    if isinstance(error, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(error, OSError):
        return httpx.ReadError(message)
    return httpx.TransportError(message)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` over one ``aiohttp.ClientSession``, with the egress settings.

    Pool size, keep-alive, proxy, source address and TLS verification come from ``settings``;
    ``lookup`` replaces the system resolver (tests). Redirects are never followed, bodies are
    neither compressed nor decompressed, and no cookies are kept.
    """

    def __init__(self, settings: EgressSettings | None = None, lookup: Lookup = system_lookup) -> None:
        self.settings = settings or EgressSettings()
        self._lookup = lookup
        self._session: aiohttp.ClientSession | None = None
        self._proxy = URL(self.settings.proxy) if self.settings.proxy else None
        # Parsed once per endpoint URL and per timeout, not on every request.
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[tuple[object, object, object], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        settings = self.settings
        exempt = (
            frozenset({self._proxy.host}) if self._proxy is not None and self._proxy.host else frozenset()
        )
        connector = _TrackingConnector(
            limit=settings.max_connections,
            limit_per_host=settings.max_connections_per_host,
            keepalive_timeout=settings.keepalive_expiry.total_seconds(),
            ssl=ssl_context(settings),
            local_addr=(settings.source_address, 0) if settings.source_address else None,
            resolver=_VettingResolver(settings, self._lookup, exempt),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )
        return self._session

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        timeout: Mapping[str, float | None],
        sni_hostname: str | None = None,
    ) -> AiohttpAnswer:
        """Send one request and return its answer, headers read, body not yet.

        The lean entrance ``HttpTransport`` uses: the same exchange as ``handle_async_request``
        without building the httpx.Request and httpx.Response objects around it, which cost
        about as much as aiohttp's whole exchange (ADR 0005). Raises httpx's exceptions.
        """
        session = self._session or self._open()
        try:
            response = await session.request(
                method,
                self._url(url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                compress=None,
                proxy=self._proxy,
                server_hostname=sni_hostname,
                timeout=self._timeout(timeout.get("pool"), timeout.get("connect"), timeout.get("read")),
            )
        except BlockedTarget as blocked:
            raise httpx.ConnectError(str(blocked)) from blocked
        except (aiohttp.ClientError, OSError) as error:
            raise _to_httpx(error) from error
        return AiohttpAnswer(response)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        # httpx's Headers scan their list on every lookup: hand aiohttp plain pairs instead.
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        try:
            answer = await self.exchange(
                request.method,
                str(request.url),
                headers,
                body,
                request.extensions.get("timeout", {}),
                request.extensions.get("sni_hostname"),
            )
        except httpx.TransportError as error:
            error.request = request
            raise
        response = answer.response
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(answer),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    def _url(self, text: str) -> URL:
        parsed = self._urls.get(text)
        if parsed is None:
            if len(self._urls) > 10_000:
                self._urls.clear()
            parsed = self._urls[text] = URL(text, encoded=True)
        return parsed

    def _timeout(self, pool: object, connect: object, read: object) -> aiohttp.ClientTimeout:
        key = (pool, connect, read)
        found = self._timeouts.get(key)
        if found is None:
            if len(self._timeouts) > 1_000:
                self._timeouts.clear()
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None,
                connect=pool,  # type: ignore[arg-type]  # floats or None, as httpx gives them
                sock_connect=connect,  # type: ignore[arg-type]
                sock_read=read,  # type: ignore[arg-type]
            )
        return found

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
