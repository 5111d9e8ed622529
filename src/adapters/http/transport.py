"""The ``Transport`` port: one POST in, one ``Outcome`` out, over libcurl by default (ADR 0005's
second addendum) or httpx's ``AsyncClient`` on any httpx transport (third addendum)."""

from __future__ import annotations

import asyncio
import codecs
import socket
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from operator import itemgetter
from types import TracebackType

import httpx

from ...core.outcomes import ErrorKind, HttpResponse, Outcome, TransportFailure
from ...core.ports import OutboundRequest
from .curl_transport import CurlTransport
from .egress import BlockedTarget, Lookup, VettedAddresses, check_url, system_lookup
from .exchange import AllowConnect, Attempt, Client, Reply, SendFailed
from .hosts import Target
from .httpx_transport import HttpxTransport
from .settings import EgressSettings, HttpClient

__all__ = ["HttpTransport", "parse_retry_after"]

_RETRY_AFTER_STATUSES = frozenset({429, 503})
# After these the vetted address is looked up again on the next attempt.
_RELOOK = frozenset({ErrorKind.CONNECTION_REFUSED, ErrorKind.CONNECT_TIMEOUT})
_ENCODED = frozenset({"gzip", "deflate", "x-gzip"})
_URL_CACHE_LIMIT = 10_000
_NAMES_KEPT = 64
_NAME = itemgetter(0)
# Charsets under which ASCII bytes read as themselves: such a body needs no incremental decoder.
_ASCII_SAFE = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1"})


class HttpTransport:
    """Implements ``attribution_webhooks.core.ports.Transport``.

    Every attempt runs the same steps whichever client sends it: the URL is read once and
    checked (``egress.check_url``, remembered per URL), its host resolved and vetted
    (``VettedAddresses``, the code registration runs too), and the client is told to connect to
    that address and nowhere else. The client is libcurl (``CurlTransport``) unless
    ``settings.client`` says httpx, or an httpx ``client`` or ``transport`` is given (an
    embedder's own stack, ``httpx.MockTransport`` in tests): then ``HttpxTransport``.

    The request's ``timeout`` bounds the whole exchange, the lookup and the body included;
    connecting may take ``settings.connect_timeout`` of it. Redirects are not followed, no
    cookies are kept. The response body is read up to ``settings.read_body_limit`` and its
    first ``settings.log_body_limit`` bytes are kept. Every failure becomes a
    ``TransportFailure``: this never raises for network trouble. ``allow_connect`` is asked
    about every connection's address (tests count connections with it).

    Use it as an async context manager, or call ``aclose()`` when done.
    """

    def __init__(
        self,
        settings: EgressSettings | None = None,
        *,
        lookup: Lookup = system_lookup,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        allow_connect: AllowConnect | None = None,
    ) -> None:
        self.settings = settings or EgressSettings()
        self._vetted = VettedAddresses(self.settings, lookup)
        self._client: Client
        if transport is not None or client is not None or self.settings.client is HttpClient.HTTPX:
            self._client = HttpxTransport(
                self.settings, transport=transport, client=client, allow_connect=allow_connect
            )
        else:
            self._client = CurlTransport(self.settings, allow_connect)
        self._targets: dict[str, Target | BlockedTarget] = {}
        # The dispatcher's headers carry their own User-Agent; these cover what a request lacks.
        self._defaults = (("User-Agent", self.settings.user_agent), ("Accept-Encoding", "identity"))
        self._missing: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}

    @property
    def client(self) -> Client:
        """The HTTP client sending the requests."""
        return self._client

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._client.aclose()

    async def send(self, request: OutboundRequest) -> Outcome:
        started = time.perf_counter()
        total = request.timeout.total_seconds()
        target: Target | None = None
        try:
            target = self._target(request.url)
            address = self._vetted.known(target)
            if address is None:
                # A lookup counts against the deadline too. (A kept address needs no timer:
                # that timer cost 4 µs of CPU per attempt, ADR 0007's drain section.)
                async with asyncio.timeout(total):
                    address = await self._vetted.address(target)
            remaining = max(total - (time.perf_counter() - started), 0.001)
            connect = min(self.settings.connect_timeout.total_seconds(), remaining)
            headers = self._with_defaults(request.headers)
            reply = await self._client.exchange(
                Attempt(target, address, headers, request.body, remaining, connect)
            )
        except BlockedTarget as blocked:
            return TransportFailure(ErrorKind.BLOCKED_TARGET, _since(started), str(blocked))
        except socket.gaierror as error:
            detail = str(error.strerror or error)
            if target is not None and target.host not in detail:
                detail = f"{target.host}: {detail}"
            return TransportFailure(ErrorKind.DNS, _since(started), detail)
        except TimeoutError:
            return TransportFailure(
                ErrorKind.CONNECT_TIMEOUT, _since(started), f"no connection within {total:g} s"
            )
        except SendFailed as failure:
            if target is not None and failure.kind in _RELOOK:
                self._vetted.forget(target)
            return TransportFailure(failure.kind, _since(started), failure.detail)
        return _response(reply, self.settings.log_body_limit, _since(started))

    def _with_defaults(self, headers: Sequence[tuple[str, str]]) -> Sequence[tuple[str, str]]:
        """``headers`` and the defaults they lack, decided once per list of names (every attempt
        of the dispatcher has the same names)."""
        names = tuple(map(_NAME, headers))
        missing = self._missing.get(names)
        if missing is None:
            given = {name.lower() for name in names}
            missing = tuple(pair for pair in self._defaults if pair[0].lower() not in given)
            if len(self._missing) > _NAMES_KEPT:
                self._missing.clear()
            self._missing[names] = missing
        return [*headers, *missing] if missing else headers

    def _target(self, url: str) -> Target:
        """``check_url``, remembered per URL: endpoints are few and their URLs immutable."""
        known = self._targets.get(url)
        if known is None:
            try:
                known = check_url(url, self.settings)
            except BlockedTarget as blocked:
                known = blocked
            if len(self._targets) > _URL_CACHE_LIMIT:
                self._targets.clear()
            self._targets[url] = known
        if isinstance(known, BlockedTarget):
            raise BlockedTarget(str(known))
        return known


def _since(started: float) -> timedelta:
    return timedelta(seconds=time.perf_counter() - started)


def _response(reply: Reply, limit: int, elapsed: timedelta) -> HttpResponse:
    status = reply.status
    retry_after = parse_retry_after(reply.header("Retry-After")) if status in _RETRY_AFTER_STATUSES else None
    return HttpResponse(status, elapsed, _text(reply, bytes(reply.body[:limit]), limit), retry_after)


def _text(reply: Reply, body: bytes, limit: int) -> str:
    if not body:
        return ""
    # Each header is looked up only if its lines mention it at all: the usual answer names
    # neither, and then needs no lookup.
    encoding = reply.header("Content-Encoding") if reply.mentions(b"content-encoding") else None
    charset = _charset(reply.header("Content-Type")) if reply.mentions(b"charset=") else "utf-8"
    if encoding is None and charset in _ASCII_SAFE and body.isascii():
        return body[:limit].decode("ascii")  # the usual short answer ("OK", JSON): no decoder
    if (encoding or "").strip().lower() in _ENCODED:
        # We asked for identity; a receiver that compresses anyway gets its text shown if the
        # kept bytes decompress, never more than the log limit (a gzip bomb stays small).
        try:
            body = zlib.decompressobj(wbits=47).decompress(body, limit)
        except zlib.error:
            return f"[{len(body)} bytes of compressed body not shown]"
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # final=False: a character cut in half at the limit is dropped, not shown as garbage.
    return decoder.decode(body[:limit], final=False)


def _charset(content_type: str | None) -> str:
    # httpx's charset_encoding goes through the email package: ten times the cost of this.
    content_type = (content_type or "").lower()
    at = content_type.find("charset=")
    if at < 0:
        return "utf-8"
    return content_type[at + 8 :].split(";", 1)[0].strip().strip('"') or "utf-8"


def parse_retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """A ``Retry-After`` header as a delay: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).

    A date in the past means "now" (zero); anything unparseable means no advice (None).
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000" in the date: RFC 5322 says UTC
        moment = moment.replace(tzinfo=UTC)
    delay = moment - (now or datetime.now(UTC))
    return max(delay, timedelta(0))
