"""Delivery through httpx: ``httpx.AsyncClient`` over any httpx transport (ADR 0005, third addendum).

libcurl is the default client (it costs about a quarter of httpx's CPU per request). This one is
for an embedder who wants deliveries to go through an httpx stack of their own (their client
with its transport, mounts or instrumentation) and for tests that cannot open a socket
(``httpx.MockTransport``); left to itself it builds a client on httpx's own transport.

Whatever the transport, the request it is handed already names the vetted address: the URL's
host is replaced by the address ``HttpTransport`` vetted, the name travels in the ``Host``
header and, for HTTPS, in the ``sni_hostname`` extension (SNI and certificate verification), so
no transport resolves a name and none can be steered elsewhere by one. Behind a proxy the
tunnel is therefore asked for with ``CONNECT <vetted address>:port``.

Failures are httpx's own exceptions, read with the system or TLS error they were raised from,
and mapped straight to ``ErrorKind``. A status counts once httpx has parsed the whole header
block (h11 returns nothing sooner); a body cut short by the receiver is a failure; a body cut
by our own limit or by the deadline keeps the status.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Iterator, Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import certifi
import httpx

from ...core.outcomes import ErrorKind
from .exchange import AllowConnect, Attempt, SendFailed, errno_kind
from .settings import EgressSettings

__all__ = ["HttpxTransport", "ssl_context"]


def ssl_context(settings: EgressSettings) -> ssl.SSLContext:
    """Verify certificates against ``ca_file`` or certifi's bundle; TLS 1.2 at least."""
    context = ssl.create_default_context(cafile=settings.ca_file or certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Reply:
    """The answer: status, headers, and the body bytes kept for the log."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.body = bytearray()

    def header(self, name: str) -> str | None:
        value: str | None = self.headers.get(name)
        return value

    def mentions(self, fragment: bytes) -> bool:
        return any(fragment in name.lower() or fragment in value.lower() for name, value in self.headers.raw)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _failure(error: Exception) -> SendFailed:
    """httpx's exception (or a transport's OSError) as the log's kind, with the system's words."""
    detail = str(error) or type(error).__name__
    for link in _chain(error):
        if isinstance(link, ssl.SSLError | ssl.CertificateError):
            return SendFailed(ErrorKind.TLS, detail if "ssl" in detail.lower() else f"{link}: {detail}")
        if isinstance(link, socket.gaierror):
            return SendFailed(ErrorKind.DNS, detail)
        if isinstance(link, OSError) and link.errno is not None:
            kind = errno_kind(link.errno)
            if kind is not None:
                return SendFailed(kind, f"{os.strerror(link.errno)}: {detail}")
    match error:
        case httpx.ConnectTimeout() | httpx.PoolTimeout():
            kind = ErrorKind.CONNECT_TIMEOUT
        case httpx.ReadTimeout() | httpx.WriteTimeout():
            kind = ErrorKind.READ_TIMEOUT
        case httpx.TimeoutException():
            kind = ErrorKind.TIMEOUT
        case httpx.ReadError() | httpx.WriteError():
            # The connection broke under us (anyio hides the errno behind BrokenResourceError).
            kind, detail = ErrorKind.CONNECTION_RESET, f"the connection broke: {detail}"
        case httpx.RemoteProtocolError() if "disconnected" in detail or "peer closed" in detail:
            kind = ErrorKind.CONNECTION_RESET
        case httpx.ProtocolError() | httpx.DecodingError():
            kind = ErrorKind.PROTOCOL
        case _:
            kind = ErrorKind.OTHER
    return SendFailed(kind, detail)


class HttpxTransport:
    """Sends through ``client`` (not closed here: its owner closes it), or through a client of
    our own on ``transport`` (httpx's ``AsyncHTTPTransport`` built from ``settings`` if None).

    ``allow_connect`` is asked before each request is handed to the transport, with the address
    it will connect to. The client of our own keeps no cookies and never follows redirects; an
    embedder's client is sent prepared requests, so its cookies, base URL, parameters and
    authentication are not added to deliveries either.
    """

    def __init__(
        self,
        settings: EgressSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        allow_connect: AllowConnect | None = None,
    ) -> None:
        if client is not None and transport is not None:
            raise ValueError("give a client or a transport, not both")
        self.settings = settings or EgressSettings()
        self._allow = allow_connect
        self._owned = client is None
        if client is None:
            # A jar whose policy accepts no cookie: one receiver's cookie must never travel with
            # another account's delivery (and the jar must not grow).
            jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
            client = httpx.AsyncClient(
                transport=transport or self._own_transport(), cookies=jar, trust_env=False
            )
        self._client = client

    def _own_transport(self) -> httpx.AsyncHTTPTransport:
        settings = self.settings
        return httpx.AsyncHTTPTransport(
            verify=ssl_context(settings),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
                keepalive_expiry=settings.keepalive_expiry.total_seconds(),
            ),
            proxy=settings.proxy,
            local_address=settings.source_address,
            trust_env=False,
        )

    async def exchange(self, attempt: Attempt) -> _Reply:
        """Send ``attempt`` over a connection to its vetted address only (``exchange.Client``)."""
        target, address, headers, total = attempt.target, attempt.address, attempt.headers, attempt.total
        connect = attempt.connect
        url = httpx.URL(target.url)
        extensions: dict[str, Any] = {
            "timeout": {"connect": min(connect, total), "read": total, "write": total, "pool": total}
        }
        if target.ip is None or str(target.ip) != address:
            url = url.copy_with(host=address)
            headers = [*headers, ("Host", target.authority)]
            if target.scheme == "https":
                extensions["sni_hostname"] = target.host
        if any("\n" in name + value or "\r" in name + value for name, value in headers):
            raise SendFailed(ErrorKind.PROTOCOL, "a header name or value holds a line break")
        if self._allow is not None and not self._allow(address, target.port):
            raise SendFailed(ErrorKind.BLOCKED_TARGET, f"a connection to {address} was refused")
        connected = False

        async def trace(event: str, info: Mapping[str, Any]) -> None:
            nonlocal connected
            if "send_request_headers" in event:  # connected, TLS done: what follows is reading
                connected = True

        extensions["trace"] = trace
        request = httpx.Request("POST", url, headers=headers, content=attempt.body, extensions=extensions)
        reply: _Reply | None = None
        try:
            async with asyncio.timeout(total):
                response = await self._client.send(request, stream=True, auth=None, follow_redirects=False)
                reply = _Reply(response)
                try:
                    await self._read(response, reply.body)
                finally:
                    await response.aclose()
        except TimeoutError:
            if reply is None:
                kind = ErrorKind.READ_TIMEOUT if connected else ErrorKind.CONNECT_TIMEOUT
                what = "response" if connected else "connection"
                raise SendFailed(kind, f"no {what} within {total:g} s") from None
            # The status is the answer; a body still dribbling in at the deadline is cut short.
        except (httpx.HTTPError, OSError) as error:
            failure = _failure(error)
            if reply is not None:
                failure = SendFailed(failure.kind, f"the body was cut short: {failure.detail}")
            raise failure from None
        return reply

    async def _read(self, response: httpx.Response, kept: bytearray) -> None:
        """Keep the first ``log_body_limit`` bytes; drain up to ``read_body_limit`` so the
        connection can be reused, and stop beyond it (the connection is then closed)."""
        keep = self.settings.log_body_limit
        budget = self.settings.read_body_limit
        read = 0
        # The raw stream, not aiter_bytes(): no decompression here (a gzip bomb stays small), and
        # a response an httpx transport built from bytes (MockTransport's) is still readable.
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        async for chunk in stream:
            if len(kept) < keep:
                kept += chunk[: keep - len(kept)]
            read += len(chunk)
            if read > budget:
                break

    async def aclose(self) -> None:
        """Close our own client's connections (an embedder's client is theirs to close)."""
        if self._owned:
            await self._client.aclose()
