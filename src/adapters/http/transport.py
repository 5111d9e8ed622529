"""The ``Transport`` port: one POST in, one ``Outcome`` out, over libcurl by default (ADR 0005's
second addendum), aiohttp as the fallback, or any httpx transport."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import time
import zlib
from collections.abc import AsyncIterator
from datetime import timedelta
from types import TracebackType
from typing import Protocol

import httpx

from ...core.outcomes import ErrorKind, HttpResponse, Outcome, TransportFailure
from ...core.ports import OutboundRequest
from .aiohttp_transport import AiohttpTransport, Progress, track_progress
from .classify import classify, parse_retry_after
from .curl_transport import CurlTransport
from .egress import BlockedTarget, Lookup, check_url, resolve_vetted, system_lookup
from .settings import EgressMode, EgressSettings, HttpClient

__all__ = ["HttpTransport"]

_RETRY_AFTER_STATUSES = frozenset({429, 503})
_ENCODED = frozenset({"gzip", "deflate", "x-gzip"})


class _Answer(Protocol):
    """A response being read, whichever way it came: status, headers, body chunks."""

    status: int

    def header(self, name: str) -> str | None: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class _HttpxAnswer:
    """An httpx.Response seen as an ``_Answer``."""

    __slots__ = ("_response", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code

    def header(self, name: str) -> str | None:
        value: str | None = self._response.headers.get(name)
        return value

    async def chunks(self) -> AsyncIterator[bytes]:
        # The raw stream itself rather than aiter_raw(): a response an httpx transport built from
        # bytes (MockTransport's) counts as already consumed, though its raw bytes are still there.
        stream = self._response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        async for chunk in stream:
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


@functools.lru_cache(maxsize=4096)
def _parsed_url(url: str) -> httpx.URL:
    # Endpoints are few and URLs immutable: parse each once, not on every attempt.
    return httpx.URL(url)


class HttpTransport:
    """Implements ``attribution_webhooks.core.ports.Transport``.

    Requests go through libcurl (``CurlTransport``, keep-alive per host) unless
    ``settings.client`` says aiohttp (``AiohttpTransport``) or another transport is given: our
    ``AiohttpTransport``, or any httpx transport (``httpx.MockTransport`` in tests that cannot
    open a socket). No cookies are kept: one receiver's cookie must never travel with another
    account's delivery.

    The request's ``timeout`` bounds the whole exchange, body included; connecting may take
    ``settings.connect_timeout`` of it. Redirects are not followed. The response body is read up
    to ``settings.read_body_limit`` and its first ``settings.log_body_limit`` bytes are kept;
    beyond that the connection is dropped rather than read. Every failure becomes a
    ``TransportFailure``: this never raises for network trouble.

    Use it as an async context manager, or call ``aclose()`` when done.
    """

    def __init__(
        self,
        settings: EgressSettings | None = None,
        *,
        lookup: Lookup = system_lookup,
        transport: httpx.AsyncBaseTransport | CurlTransport | None = None,
    ) -> None:
        self.settings = settings or EgressSettings()
        self._lookup = lookup
        if transport is None:
            if self.settings.client is HttpClient.CURL:
                transport = CurlTransport(self.settings, lookup)
            else:
                transport = AiohttpTransport(self.settings, lookup)
        # libcurl does the whole exchange in C, body limits and deadline included (ADR 0005's
        # second addendum): about half of aiohttp's CPU per request.
        self._curl = transport if isinstance(transport, CurlTransport) else None
        # Otherwise requests go straight to the httpx transport: AsyncClient.send() adds auth,
        # cookies, event hooks and redirect handling, which a webhook POST never uses, at about
        # the cost of the whole aiohttp exchange (ADR 0005). The transport is still httpx's
        # interface: httpx.Request in, httpx.Response out, httpx exceptions.
        self._transport: httpx.AsyncBaseTransport | CurlTransport = transport
        # Our own aiohttp transport also has a lean entrance that skips building the httpx
        # Request and Response objects, which nothing here reads: it nearly doubles the rate.
        self._lean = transport if isinstance(transport, AiohttpTransport) else None
        self._checked: dict[str, BlockedTarget | None] = {}
        # The dispatcher's headers carry their own User-Agent; these cover what a request lacks.
        self._defaults = (("User-Agent", self.settings.user_agent), ("Accept-Encoding", "identity"))
        # Behind a proxy the proxy resolves names, so production mode resolves and vets here and
        # sends to the vetted address, with the name kept for Host and TLS (SNI, certificate).
        # (libcurl pins every transfer to its vetted address itself, proxy or not.)
        self._pin_here = (
            self._curl is None
            and self.settings.proxy is not None
            and self.settings.mode is EgressMode.PRODUCTION
        )

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._transport.aclose()

    async def send(self, request: OutboundRequest) -> Outcome:
        started = time.perf_counter()

        def elapsed() -> timedelta:
            return timedelta(seconds=time.perf_counter() - started)

        total = request.timeout.total_seconds()
        progress = track_progress()
        answer: _Answer | None = None
        body = bytearray()
        # libcurl keeps the deadline itself, so that a status received just before it is still
        # the answer; an event-loop timeout on top would cost as much as the check again.
        deadline = contextlib.nullcontext() if self._curl is not None else asyncio.timeout(total)
        try:
            async with deadline:
                answer = await self._exchange(request, total)
                await self._read(answer, body)
        except TimeoutError:
            if answer is None:
                kind, detail = self._deadline(progress, total)
                return TransportFailure(kind, elapsed(), detail)
            # The status is the answer; a body still dribbling in at the deadline is cut short.
        except (httpx.HTTPError, httpx.InvalidURL, BlockedTarget, OSError, ValueError) as error:
            if answer is None:
                kind, detail = classify(error)
                return TransportFailure(kind, elapsed(), detail)
            # The status is the answer, whatever happened to the body after it.
        finally:
            if answer is not None:
                await answer.aclose()
        return self._answer(answer, bytes(body), elapsed())

    def _check(self, url: str) -> None:
        """``check_url``, remembered per URL: endpoints are few and their URLs immutable."""
        try:
            blocked = self._checked[url]
        except KeyError:
            try:
                check_url(url, self.settings)
                blocked = None
            except BlockedTarget as error:
                blocked = error
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[url] = blocked
        if blocked is not None:
            raise BlockedTarget(str(blocked))

    async def _exchange(self, request: OutboundRequest, total: float) -> _Answer:
        self._check(request.url)
        connect = min(self.settings.connect_timeout.total_seconds(), total)
        given = {name.lower() for name, _ in request.headers}
        headers = [*request.headers, *(pair for pair in self._defaults if pair[0].lower() not in given)]
        if self._curl is not None:
            return await self._curl.exchange(request.url, headers, request.body, total, connect)
        timeout = {"connect": connect, "read": total, "write": total, "pool": total}
        url, sni_hostname = request.url, None
        if self._pin_here:
            url, sni_hostname, host_header = await self._pinned(url)
            headers.append(("Host", host_header))
        if self._lean is not None:
            return await self._lean.exchange("POST", url, headers, request.body, timeout, sni_hostname)
        # Any other httpx transport gets a plain httpx.Request: the client's build_request()
        # would merge client defaults, cookies and parameters we do not use.
        extensions: dict[str, object] = {"timeout": timeout}
        if sni_hostname is not None:
            extensions["sni_hostname"] = sni_hostname
        outgoing = httpx.Request(
            "POST", _parsed_url(url), headers=headers, content=request.body, extensions=extensions
        )
        assert isinstance(self._transport, httpx.AsyncBaseTransport)
        return _HttpxAnswer(await self._transport.handle_async_request(outgoing))

    async def _pinned(self, url: str) -> tuple[str, str, str]:
        """The URL with its host replaced by the address the egress policy vetted just now; the
        host name to keep for TLS (SNI and the certificate); and the Host header's value."""
        parsed = httpx.URL(url)
        port = parsed.port or 443
        _, address = (await resolve_vetted(parsed.host, port, self.settings, self._lookup))[0]
        return str(parsed.copy_with(host=address)), parsed.host, parsed.netloc.decode("ascii")

    async def _read(self, answer: _Answer, kept: bytearray) -> None:
        """Keep the first ``log_body_limit`` bytes in ``kept``; drain up to ``read_body_limit`` so
        the connection can be reused, and stop beyond it (the connection is then closed)."""
        keep = self.settings.log_body_limit
        budget = self.settings.read_body_limit
        read = 0
        async for chunk in answer.chunks():
            if len(kept) < keep:
                kept += chunk[: keep - len(kept)]
            read += len(chunk)
            if read > budget:
                break

    def _answer(self, answer: _Answer, body: bytes, elapsed: timedelta) -> HttpResponse:
        status = answer.status
        retry_after = (
            parse_retry_after(answer.header("Retry-After")) if status in _RETRY_AFTER_STATUSES else None
        )
        return HttpResponse(status, elapsed, self._text(answer, body), retry_after)

    def _text(self, answer: _Answer, body: bytes) -> str:
        if not body:
            return ""
        limit = self.settings.log_body_limit
        if (answer.header("Content-Encoding") or "").strip().lower() in _ENCODED:
            # We asked for identity; a receiver that compresses anyway gets its text shown if
            # the kept bytes decompress, never more than the log limit.
            try:
                body = zlib.decompressobj(wbits=47).decompress(body, limit)
            except zlib.error:
                return f"[{len(body)} bytes of compressed body not shown]"
        try:
            decoder = codecs.getincrementaldecoder(_charset(answer.header("Content-Type")))(errors="replace")
        except LookupError:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # final=False: a character cut in half at the limit is dropped, not shown as garbage.
        return decoder.decode(body[:limit], final=False)

    @staticmethod
    def _deadline(progress: Progress, total: float) -> tuple[ErrorKind, str]:
        if progress.connected:
            return ErrorKind.READ_TIMEOUT, f"no response within {total:g} s"
        return ErrorKind.CONNECT_TIMEOUT, f"no connection within {total:g} s"


def _charset(content_type: str | None) -> str:
    # httpx's charset_encoding goes through the email package: ten times the cost of this.
    content_type = (content_type or "").lower()
    at = content_type.find("charset=")
    if at < 0:
        return "utf-8"
    return content_type[at + 8 :].split(";", 1)[0].strip().strip('"') or "utf-8"
