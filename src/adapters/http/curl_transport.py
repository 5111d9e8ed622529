"""Delivery through libcurl (pycurl): the port's default client since ADR 0005's second addendum.

libcurl does the HTTP work in C (connecting, TLS, writing the request, parsing the answer, the
keep-alive pool) and pycurl drives it from the event loop with ``pycurl.AsyncCurlMulti``; per
request, Python sets a few options and runs two callbacks (header lines, body chunks). Measured
side by side, that is about half the CPU per request of aiohttp's ``ClientSession``.

What the port needs from a client, and how it is done here:

- Egress safety: the host is resolved and vetted by ``resolve_vetted`` (through the injectable
  ``lookup``), and the transfer is pinned to the vetted address with ``CURLOPT_CONNECT_TO``:
  libcurl then connects to that address and never resolves the name, while the URL keeps the
  name for ``Host``, SNI and certificate verification. Behind a proxy the tunnel is asked for
  with ``CONNECT <vetted address>:port``. A pooled connection is only reused by a transfer
  pinned to the same address (libcurl matches the connect-to target too). Vetted answers are
  kept ``_VETTED_TTL`` seconds, as aiohttp's DNS cache kept them.
- The deadline: ``CURLOPT_TIMEOUT_MS`` bounds the whole exchange and ``CURLOPT_CONNECTTIMEOUT_MS``
  the connection (TCP and TLS); at a timeout, ``REQUEST_SIZE`` (request bytes written) tells
  whether a connection had been made (read timeout) or not (connect timeout). A status already received is the
  answer, whatever happens to the body after it.
- The body: the first ``log_body_limit`` bytes are kept; past ``read_body_limit`` bytes the
  write callback refuses the data, libcurl aborts the transfer and closes the connection.
- No redirects (``FOLLOWLOCATION`` is off), no cookie engine (no ``COOKIEFILE``), no proxy from
  the environment (``PROXY`` and ``NOPROXY`` are always set), no decompression, HTTP/1.1.
- Failures come out as httpx's exceptions with the operating system's or the TLS library's
  error chained as ``__cause__``, like ``AiohttpTransport``'s, so ``classify`` reads them alike.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

import certifi
import httpx
import pycurl

from .egress import Lookup, resolve_vetted, system_lookup
from .settings import EgressSettings

__all__ = ["CurlAnswer", "CurlTransport"]

# How long a vetted DNS answer is used for new transfers (aiohttp's default DNS cache: 10 s).
_VETTED_TTL = 10.0
_CACHE_LIMIT = 10_000

_TLS_ERRORS = frozenset(
    {
        pycurl.E_SSL_CONNECT_ERROR,
        pycurl.E_SSL_CERTPROBLEM,
        pycurl.E_SSL_CIPHER,
        pycurl.E_PEER_FAILED_VERIFICATION,
        pycurl.E_SSL_CACERT_BADFILE,
        pycurl.E_SSL_ISSUER_ERROR,
        pycurl.E_SSL_PINNEDPUBKEYNOTMATCH,
        pycurl.E_SSL_INVALIDCERTSTATUS,
        pycurl.E_SSL_SHUTDOWN_FAILED,
        pycurl.E_USE_SSL_FAILED,
    }
)
# Answers that are not HTTP/1.1 (libcurl calls a reply without a status line HTTP/0.9 and
# refuses it as an unsupported protocol: the URL's scheme was checked before, so it is the reply).
_PROTOCOL_ERRORS = frozenset(
    {pycurl.E_UNSUPPORTED_PROTOCOL, 8, pycurl.E_HTTP2, pycurl.E_BAD_CONTENT_ENCODING}
)  # 8: CURLE_WEIRD_SERVER_REPLY, which pycurl does not name
_CONNECT_ERRORS = frozenset({pycurl.E_COULDNT_CONNECT, pycurl.E_OPERATION_TIMEDOUT})


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> tuple[str, str, int, bool]:
    """The URL in ASCII (libcurl takes no IDN here: a non-ASCII name goes as punycode, a path
    percent-encoded), its host, port, and whether the host is an IP literal; once per URL."""
    if not url.isascii():
        url = str(httpx.URL(url))
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    return url, host, port, literal


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class CurlAnswer:
    """What came back: the status, the final response's header lines, and the kept body.

    The transfer is over when this exists (libcurl read the body up to the limit), so
    ``chunks()`` yields the kept bytes and ``aclose()`` has nothing left to do.
    """

    __slots__ = ("_budget", "_keep", "body", "lines", "read", "status")

    def __init__(self, keep: int, budget: int) -> None:
        self._keep = keep
        self._budget = budget
        self.status = 0
        self.lines: list[bytes] = []
        self.body = bytearray()
        self.read = 0

    def write(self, chunk: bytes) -> int | None:
        """libcurl's write callback: keep the start, count the rest, refuse past the budget."""
        if len(self.body) < self._keep:
            self.body += chunk[: self._keep - len(self.body)]
        self.read += len(chunk)
        # Refusing the data (0 bytes taken) makes libcurl abort and close the connection.
        return 0 if self.read > self._budget else None

    def header(self, name: str) -> str | None:
        """The final response's header ``name`` (1xx and proxy CONNECT answers come before it)."""
        wanted = name.lower().encode("ascii") + b":"
        size = len(wanted)
        for line in reversed(self.lines):
            if line[:5] == b"HTTP/":
                return None
            if line[:size].lower() == wanted:
                return line[size:].strip().decode("latin-1")
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.body:
            yield bytes(self.body)

    async def aclose(self) -> None:
        return None


def _failure(code: int, message: str, handle: pycurl.Curl) -> httpx.TransportError:
    """libcurl's error as httpx's, with the cause ``classify`` reads chained underneath."""
    text = message or f"libcurl error {code}"
    os_errno = int(handle.getinfo(pycurl.OS_ERRNO) or 0)
    cause: BaseException | None = None
    error: httpx.TransportError
    if code == pycurl.E_OPERATION_TIMEDOUT:
        # Request bytes written means a connection (new or pooled, TLS done) was there: the
        # receiver is slow. None written: connecting (TCP or TLS) took too long.
        if handle.getinfo(pycurl.REQUEST_SIZE) > 0:
            error = httpx.ReadTimeout(text)
        else:
            error = httpx.ConnectTimeout(text)
    elif code == pycurl.E_COULDNT_CONNECT:
        error = httpx.ConnectError(text)
        if os_errno:
            cause = OSError(os_errno, os.strerror(os_errno))
    elif code in _TLS_ERRORS:
        error = httpx.ConnectError(text)
        if code == pycurl.E_PEER_FAILED_VERIFICATION:
            cause = ssl.SSLCertVerificationError(text)
        else:
            cause = ssl.SSLError(text)
    elif code == pycurl.E_GOT_NOTHING:
        error = httpx.RemoteProtocolError(f"Server disconnected without sending a response ({text})")
    elif code in (pycurl.E_SEND_ERROR, pycurl.E_RECV_ERROR):
        error = httpx.WriteError(text) if code == pycurl.E_SEND_ERROR else httpx.ReadError(text)
        if os_errno:
            cause = OSError(os_errno, os.strerror(os_errno))
        elif "CONNECT" in text:
            error = httpx.ProxyError(text)
    elif code in (pycurl.E_COULDNT_RESOLVE_PROXY, pycurl.E_COULDNT_RESOLVE_HOST):
        error = httpx.ConnectError(text)
        cause = socket.gaierror(socket.EAI_NONAME, text)
    elif code in _PROTOCOL_ERRORS:
        error = httpx.RemoteProtocolError(text)
    else:
        error = httpx.TransportError(text)
        if os_errno:
            cause = OSError(os_errno, os.strerror(os_errno))
    error.__cause__ = cause
    return error


class CurlTransport:
    """Sends requests through one libcurl multi handle on the running event loop.

    Pool size, keep-alive, proxy, source address and TLS verification come from ``settings``;
    ``lookup`` replaces the system resolver (tests). One instance belongs to one event loop.
    """

    def __init__(self, settings: EgressSettings | None = None, lookup: Lookup = system_lookup) -> None:
        self.settings = settings or EgressSettings()
        self._lookup = lookup
        self._multi: pycurl.AsyncCurlMulti | None = None
        self._idle: list[pycurl.Curl] = []
        self._vetted: dict[tuple[str, int], tuple[float, str]] = {}
        self._resolving: dict[tuple[str, int], asyncio.Future[str]] = {}
        self._interface = f"host!{self.settings.source_address}" if self.settings.source_address else None

    def _open(self) -> pycurl.AsyncCurlMulti:
        settings = self.settings
        multi = pycurl.AsyncCurlMulti()
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, settings.max_connections)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, settings.max_connections_per_host)
        multi.setopt(pycurl.M_MAXCONNECTS, settings.max_connections)
        self._multi = multi
        return multi

    def _handle(self) -> pycurl.Curl:
        """An easy handle with everything that does not change between requests set once."""
        if self._idle:
            return self._idle.pop()
        settings = self.settings
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        handle.setopt(pycurl.CAINFO, settings.ca_file or certifi.where())
        handle.setopt(pycurl.SSLVERSION, pycurl.SSLVERSION_TLSv1_2)
        handle.setopt(pycurl.MAXAGE_CONN, max(1, round(settings.keepalive_expiry.total_seconds())))
        # An empty PROXY (and NOPROXY) keeps libcurl from reading proxies from the environment.
        handle.setopt(pycurl.PROXY, settings.proxy or "")
        handle.setopt(pycurl.NOPROXY, "")
        if self._interface is not None:
            handle.setopt(pycurl.INTERFACE, self._interface)
        return handle

    async def _address(self, host: str, port: int) -> str:
        """The vetted address to connect to, looked up now (``exchange`` reads the cache)."""
        key = (host, port)
        pending = self._resolving.get(key)
        if pending is None:
            # One lookup per name at a time: concurrent first deliveries to a host share it.
            pending = asyncio.ensure_future(self._resolve(host, port))
            self._resolving[key] = pending
            pending.add_done_callback(lambda _: self._resolving.pop(key, None))
        return await asyncio.shield(pending)

    async def _resolve(self, host: str, port: int) -> str:
        _, address = (await resolve_vetted(host, port, self.settings, self._lookup))[0]
        if len(self._vetted) > _CACHE_LIMIT:
            self._vetted.clear()
        self._vetted[host, port] = (time.monotonic() + _VETTED_TTL, address)
        return address

    async def exchange(
        self, url: str, headers: Sequence[tuple[str, str]], body: bytes, total: float, connect: float
    ) -> CurlAnswer:
        """POST ``body`` to ``url`` and return the answer with its body read up to the limits.

        ``total`` seconds bound everything from here on (the lookup included), ``connect`` of
        them the connection. Raises httpx's exceptions (and ``BlockedTarget`` or
        ``socket.gaierror`` from the egress check).
        """
        deadline = time.monotonic() + total
        url, host, port, literal = _target(url)
        if literal:
            address = host
        else:
            cached = self._vetted.get((host, port))
            if cached is not None and cached[0] > time.monotonic():
                address = cached[1]
            else:
                # A lookup counts against the deadline too.
                async with asyncio.timeout(total):
                    address = await self._address(host, port)
        multi = self._multi or self._open()
        settings = self.settings
        answer = CurlAnswer(settings.log_body_limit, settings.read_body_limit)
        lines = [f"{name}: {value}" for name, value in headers]
        joined = "".join(lines)
        if "\n" in joined or "\r" in joined:
            # libcurl sends header lines as given (aiohttp would refuse): no header injection.
            raise httpx.LocalProtocolError("a header name or value holds a line break")
        # libcurl's own additions: none of Accept, Expect: 100-continue (one more round trip for
        # bodies over 1 KiB) or a form Content-Type for a body that did not say what it is.
        lines += ("Accept:", "Expect:")
        if not any(name.lower() == "content-type" for name, _ in headers):
            lines.append("Content-Type:")
        remaining = max(deadline - time.monotonic(), 0.001)
        handle = self._handle()
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.HTTPHEADER, lines)
        handle.setopt(pycurl.POSTFIELDSIZE, len(body))
        handle.setopt(pycurl.POSTFIELDS, body)
        handle.setopt(pycurl.WRITEFUNCTION, answer.write)
        handle.setopt(pycurl.HEADERFUNCTION, answer.lines.append)
        handle.setopt(pycurl.CONNECT_TO, [] if literal else [f"{host}:{port}:{_bracketed(address)}:{port}"])
        handle.setopt(pycurl.TIMEOUT_MS, max(1, int(remaining * 1000)))
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(min(connect, remaining) * 1000)))
        # If this is cancelled, the multi handle lets go of the easy handle only on its next
        # turn, so a cancelled handle is not put back for reuse (a fresh one is made instead).
        try:
            await multi.perform(handle)
        except pycurl.error as error:
            details: tuple[object, ...] = error.args  # (libcurl's error code, its message)
            code, message = int(str(details[0])), str(details[1])
            answer.status = int(handle.getinfo(pycurl.RESPONSE_CODE))
            if answer.status < 200:
                if code in _CONNECT_ERRORS and not literal:
                    self._vetted.pop((host, port), None)  # the next attempt looks again
                failure = _failure(code, message, handle)
                self._idle.append(handle)
                raise failure from failure.__cause__
            # A status was received: that is the answer, however the body ended (cut short by
            # our limit, by the deadline or by the receiver).
        else:
            answer.status = int(handle.getinfo(pycurl.RESPONSE_CODE))
        self._idle.append(handle)
        return answer

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._multi is not None:
            await self._multi.aclose()
            self._multi = None
        for handle in self._idle:
            handle.close()
        self._idle.clear()
