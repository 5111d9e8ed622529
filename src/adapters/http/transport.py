"""The ``Transport`` port over an ``httpx.AsyncClient``: one POST in, one ``Outcome`` out."""

from __future__ import annotations

import asyncio
import codecs
import functools
import time
import zlib
from datetime import timedelta
from types import TracebackType
from urllib.parse import urlsplit

import httpx

from ...core.outcomes import ErrorKind, HttpResponse, Outcome, TransportFailure
from ...core.ports import OutboundRequest
from .aiohttp_transport import AiohttpTransport, Progress, track_progress
from .classify import classify, parse_retry_after
from .egress import BlockedTarget, Lookup, check_url, resolve_vetted, system_lookup
from .settings import EgressMode, EgressSettings

__all__ = ["HttpTransport"]

_RETRY_AFTER_STATUSES = frozenset({429, 503})
_ENCODED = frozenset({"gzip", "deflate", "x-gzip"})


@functools.lru_cache(maxsize=4096)
def _parsed_url(url: str) -> httpx.URL:
    # Endpoints are few and URLs immutable: parse each once, not on every attempt.
    return httpx.URL(url)


class HttpTransport:
    """Implements ``attribution_webhooks.core.ports.Transport``.

    Requests go to one pooled httpx transport (keep-alive per host): ``AiohttpTransport`` unless
    another is given (``httpx.MockTransport`` in tests that cannot open a socket). No cookies
    are kept: one receiver's cookie must never travel with another account's delivery.

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or EgressSettings()
        self._lookup = lookup
        # Requests go straight to the httpx transport: AsyncClient.send() adds auth, cookies,
        # event hooks and redirect handling, which a webhook POST never uses, at about the cost
        # of the whole aiohttp exchange (ADR 0005). The transport is still httpx's interface:
        # httpx.Request in, httpx.Response out, httpx exceptions.
        self._transport = transport or AiohttpTransport(self.settings, lookup)
        self._checked: dict[str, BlockedTarget | None] = {}
        # The dispatcher's headers carry their own User-Agent; these cover what a request lacks.
        self._defaults = (("User-Agent", self.settings.user_agent), ("Accept-Encoding", "identity"))
        # Behind a proxy the proxy resolves names, so production mode resolves and vets here and
        # sends to the vetted address, with the name kept for Host and TLS (SNI, certificate).
        self._pin_here = self.settings.proxy is not None and self.settings.mode is EgressMode.PRODUCTION

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
        response: httpx.Response | None = None
        body = bytearray()
        try:
            async with asyncio.timeout(total):
                outgoing = await self._prepare(request, total)
                response = await self._transport.handle_async_request(outgoing)
                await self._read(response, body)
        except TimeoutError:
            if response is None:
                kind, detail = self._deadline(progress, total)
                return TransportFailure(kind, elapsed(), detail)
            # The status is the answer; a body still dribbling in at the deadline is cut short.
        except (httpx.HTTPError, httpx.InvalidURL, BlockedTarget, OSError, ValueError) as error:
            if response is None:
                kind, detail = classify(error)
                return TransportFailure(kind, elapsed(), detail)
            # The status is the answer, whatever happened to the body after it.
        finally:
            if response is not None:
                await response.aclose()
        return self._answer(response, bytes(body), elapsed())

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

    async def _prepare(self, request: OutboundRequest, total: float) -> httpx.Request:
        self._check(request.url)
        connect = min(self.settings.connect_timeout.total_seconds(), total)
        given = {name.lower() for name, _ in request.headers}
        headers = [*request.headers, *(pair for pair in self._defaults if pair[0].lower() not in given)]
        # A plain httpx.Request: the client's build_request() would merge client defaults,
        # cookies and parameters we do not use, at about twice the cost.
        outgoing = httpx.Request(
            "POST",
            _parsed_url(request.url),
            headers=headers,
            content=request.body,
            extensions={"timeout": {"connect": connect, "read": total, "write": total, "pool": total}},
        )
        if self._pin_here:
            parts = urlsplit(request.url)
            host = parts.hostname or ""
            port = parts.port or 443
            _, address = (await resolve_vetted(host, port, self.settings, self._lookup))[0]
            outgoing.url = outgoing.url.copy_with(host=address)
            outgoing.extensions["sni_hostname"] = host
        return outgoing

    async def _read(self, response: httpx.Response, kept: bytearray) -> None:
        """Keep the first ``log_body_limit`` bytes in ``kept``; drain up to ``read_body_limit`` so
        the connection can be reused, and stop beyond it (the connection is then closed)."""
        keep = self.settings.log_body_limit
        budget = self.settings.read_body_limit
        read = 0
        async for chunk in response.aiter_raw():
            if len(kept) < keep:
                kept += chunk[: keep - len(kept)]
            read += len(chunk)
            if read > budget:
                break

    def _answer(self, response: httpx.Response, body: bytes, elapsed: timedelta) -> HttpResponse:
        status = response.status_code
        retry_after = (
            parse_retry_after(response.headers.get("Retry-After"))
            if status in _RETRY_AFTER_STATUSES
            else None
        )
        return HttpResponse(status, elapsed, self._text(response, body), retry_after)

    def _text(self, response: httpx.Response, body: bytes) -> str:
        if not body:
            return ""
        limit = self.settings.log_body_limit
        if response.headers.get("Content-Encoding", "").strip().lower() in _ENCODED:
            # We asked for identity; a receiver that compresses anyway gets its text shown if
            # the kept bytes decompress, never more than the log limit.
            try:
                body = zlib.decompressobj(wbits=47).decompress(body, limit)
            except zlib.error:
                return f"[{len(body)} bytes of compressed body not shown]"
        try:
            decoder = codecs.getincrementaldecoder(_charset(response))(errors="replace")
        except LookupError:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # final=False: a character cut in half at the limit is dropped, not shown as garbage.
        return decoder.decode(body[:limit], final=False)

    @staticmethod
    def _deadline(progress: Progress, total: float) -> tuple[ErrorKind, str]:
        if progress.connected:
            return ErrorKind.READ_TIMEOUT, f"no response within {total:g} s"
        return ErrorKind.CONNECT_TIMEOUT, f"no connection within {total:g} s"


def _charset(response: httpx.Response) -> str:
    # httpx's charset_encoding goes through the email package: ten times the cost of this.
    content_type = response.headers.get("Content-Type", "").lower()
    at = content_type.find("charset=")
    if at < 0:
        return "utf-8"
    return content_type[at + 8 :].split(";", 1)[0].strip().strip('"') or "utf-8"
