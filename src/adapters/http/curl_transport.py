"""Delivery through libcurl (pycurl): the port's default client since ADR 0005's second addendum.

libcurl does the HTTP work in C (connecting, TLS, writing the request, parsing the answer, the
keep-alive pool) and ``curl_multi.CurlMulti`` drives it from the event loop; per
request, Python sets a few options and libcurl calls back for header lines and body chunks.
Measured side by side, that is about half the CPU per request of aiohttp's ``ClientSession``.

What the port needs from a client, and how it is done here:

- Egress safety: ``HttpTransport`` reads the URL once (``hosts.parse_target``) and vets one
  address; libcurl is given the canonical URL and ``CURLOPT_CONNECT_TO`` ``::address:port``,
  whose empty host and port match *whatever* host libcurl thinks the URL names, so it connects
  to the vetted address and never resolves anything. Two callbacks check it again:
  ``OPENSOCKETFUNCTION`` refuses a socket to any other address, ``PREREQFUNCTION`` a request on
  a connection to any other address. Behind a proxy the tunnel is asked for with
  ``CONNECT <vetted address>:port`` (and the socket goes to the proxy, so only the second check
  applies). A pooled connection is reused only by a transfer to the same name and address.
- One attempt, one request on the wire (issue 10.6): libcurl re-sends a request by itself when
  a reused connection dies before any answer byte. ``PREREQFUNCTION`` runs before each send, so
  the second call of one transfer is aborted: the attempt fails as ``connection_reset`` and the
  retry schedule, not libcurl, decides when to send again, as a new numbered attempt.
- No false success (issue 10.1): libcurl reports a status as soon as the status line is read,
  and ends a transfer that loses its connection mid-headers without an error. A status counts
  only when the header block ended (its blank line reached the header callback); a body cut
  short by the receiver (shorter than Content-Length, an unfinished chunked body, a reset) is a
  failure. A body cut by our own limit or by the deadline keeps the status.
- The deadline: ``CURLOPT_TIMEOUT_MS`` bounds the whole exchange and ``CURLOPT_CONNECTTIMEOUT_MS``
  the connection (TCP and TLS); at a timeout, ``REQUEST_SIZE`` (request bytes written) tells
  whether a connection had been made (read timeout) or not (connect timeout).
- The body: the first ``log_body_limit`` bytes are kept; past ``read_body_limit`` bytes the
  write callback refuses the data, libcurl aborts the transfer and closes the connection.
- No redirects (``FOLLOWLOCATION`` is off), no cookie engine (no ``COOKIEFILE``), no proxy from
  the environment (``PROXY`` and ``NOPROXY`` are always set), no decompression, HTTP/1.1.
- Failures map from libcurl's error codes (and the system's errno) straight to ``ErrorKind``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from operator import itemgetter

import certifi
import pycurl

from ...core.outcomes import ErrorKind
from .curl_multi import CurlMulti
from .exchange import AllowConnect, Attempt, SendFailed, errno_kind
from .settings import EgressSettings

__all__ = ["CurlAnswer", "CurlTransport"]

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
# 8: CURLE_WEIRD_SERVER_REPLY and 100: CURLE_TOO_LARGE, which pycurl does not name.
_PROTOCOL_ERRORS = frozenset({pycurl.E_UNSUPPORTED_PROTOCOL, 8, 100, pycurl.E_HTTP2})
_DNS_ERRORS = frozenset({pycurl.E_COULDNT_RESOLVE_PROXY, pycurl.E_COULDNT_RESOLVE_HOST})
_LINE = "%s: %s"  # a (name, value) pair as a header line, formatted in C by ``map``
_NAME = itemgetter(0)
_NO_ADDITIONS = ("Accept:", "Expect:")
_NAMES_KEPT = 64


def _resend_refused() -> SendFailed:
    return SendFailed(
        ErrorKind.CONNECTION_RESET,
        "the kept-alive connection closed after the request was sent; not sent again",
    )


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _same_address(seen: str, vetted: str) -> bool:
    if seen == vetted:
        return True
    try:
        return ipaddress.ip_address(seen.split("%", 1)[0]) == ipaddress.ip_address(vetted)
    except ValueError:
        return False


class CurlAnswer:
    """One transfer's state: the status, the header lines, the kept body, and the guards'
    verdicts (a connection refused because of its address, a re-send refused)."""

    __slots__ = (
        "_allow",
        "_budget",
        "_keep",
        "_pinned",
        "body",
        "lines",
        "read",
        "refusal",
        "sends",
        "status",
    )

    def __init__(
        self, keep: int, budget: int, pinned: str | None = None, allow: AllowConnect | None = None
    ) -> None:
        self._keep = keep
        self._budget = budget
        self._pinned = pinned
        self._allow = allow
        self.status = 0
        self.lines: list[bytes] = []
        self.body = bytearray()
        self.read = 0
        self.sends = 0
        self.refusal: SendFailed | None = None

    def reset(self, pinned: str | None) -> None:
        """Ready for the next transfer of its handle (the callbacks stay bound to this object)."""
        self._pinned = pinned
        self.status = 0
        self.lines.clear()
        del self.body[:]
        self.read = 0
        self.sends = 0
        self.refusal = None

    def write(self, chunk: bytes) -> int | None:
        """libcurl's write callback: keep the start, count the rest, refuse past the budget."""
        if len(self.body) < self._keep:
            self.body += chunk[: self._keep - len(self.body)]
        self.read += len(chunk)
        # Refusing the data (0 bytes taken) makes libcurl abort and close the connection.
        return 0 if self.read > self._budget else None

    def open_socket(self, purpose: int, address: tuple[int, int, int, tuple[str, int]]) -> object:
        """libcurl's OPENSOCKETFUNCTION: a socket only to the vetted address (and the hook's)."""
        family, kind, protocol, (host, port) = address[0], address[1], address[2], address[3][:2]
        if self.sends:
            # libcurl re-sending on a fresh connection: refuse the connection itself.
            self.refusal = _resend_refused()
            return pycurl.SOCKET_BAD
        if self._pinned is not None and not _same_address(host, self._pinned):
            self.refusal = SendFailed(ErrorKind.BLOCKED_TARGET, f"{host} is not the vetted {self._pinned}")
            return pycurl.SOCKET_BAD
        if self._allow is not None and not self._allow(host, port):
            self.refusal = SendFailed(ErrorKind.BLOCKED_TARGET, f"a connection to {host} was refused")
            return pycurl.SOCKET_BAD
        return socket.socket(family, kind, protocol)

    def prereq(self, primary_ip: str, local_ip: str, primary_port: int, local_port: int) -> int:
        """libcurl's PREREQFUNCTION, before each request is sent: once per transfer, and only
        over a connection to the vetted address."""
        self.sends += 1
        if self.sends > 1:
            self.refusal = _resend_refused()
            return pycurl.PREREQFUNC_ABORT
        if self._pinned is not None and not _same_address(primary_ip, self._pinned):
            self.refusal = SendFailed(
                ErrorKind.BLOCKED_TARGET, f"{primary_ip} is not the vetted {self._pinned}"
            )
            return pycurl.PREREQFUNC_ABORT
        return pycurl.PREREQFUNC_OK

    def complete(self) -> bool:
        """Whether a final (2xx-5xx) status arrived with its whole header block: its blank line
        is the last line libcurl handed over, after that status's own line."""
        if self.status < 200 or not self.lines or self.lines[-1].strip():
            return False
        for line in reversed(self.lines):
            if line[:5] == b"HTTP/":
                return line[9:12] == b"%d" % self.status
        return False

    def mentions(self, fragment: bytes) -> bool:
        """Whether ``fragment`` occurs in the header lines read in lower case (every block's)."""
        return fragment in b"".join(self.lines).lower()

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

    def outcome(self, code: int, message: str, handle: pycurl.Curl) -> SendFailed | None:
        """None if the answer stands; otherwise why not, in the log's words."""
        text = message or f"libcurl error {code}"
        if self.complete():
            if code == 0 or (code == pycurl.E_WRITE_ERROR and self.read > self._budget):
                return None  # the whole answer, or the body cut by our own limit
            if code == pycurl.E_OPERATION_TIMEDOUT:
                return None  # the deadline struck while the body was arriving: the status stands
            kind = errno_kind(int(handle.getinfo(pycurl.OS_ERRNO) or 0))
            if code == pycurl.E_PARTIAL_FILE:
                kind = ErrorKind.CONNECTION_RESET
            return SendFailed(kind or ErrorKind.PROTOCOL, f"the body was cut short: {text}")
        if self.refusal is not None:
            return self.refusal
        if code == 0:
            return SendFailed(
                ErrorKind.CONNECTION_RESET, "the connection ended before the header block was complete"
            )
        return _failure(code, text, handle, began=bool(self.lines))


def _failure(code: int, text: str, handle: pycurl.Curl, began: bool) -> SendFailed:
    """libcurl's error for a transfer that got no complete answer, as the log's kind."""
    os_errno = int(handle.getinfo(pycurl.OS_ERRNO) or 0)
    if os_errno > 0 and os.strerror(os_errno) not in text:
        text = f"{os.strerror(os_errno)}: {text}"
    if code == pycurl.E_OPERATION_TIMEDOUT:
        # Request bytes written means a connection (new or pooled, TLS done) was there: the
        # receiver is slow. None written: connecting (TCP or TLS) took too long.
        written = handle.getinfo(pycurl.REQUEST_SIZE) > 0
        return SendFailed(ErrorKind.READ_TIMEOUT if written else ErrorKind.CONNECT_TIMEOUT, text)
    if code in _TLS_ERRORS:
        return SendFailed(ErrorKind.TLS, text)
    if code == pycurl.E_GOT_NOTHING:
        return SendFailed(ErrorKind.CONNECTION_RESET, f"the receiver disconnected without answering ({text})")
    if code in _DNS_ERRORS:
        return SendFailed(ErrorKind.DNS, text)
    if code in _PROTOCOL_ERRORS:
        return SendFailed(ErrorKind.PROTOCOL, text)
    kind = errno_kind(os_errno)
    if kind is not None:
        return SendFailed(kind, text)
    if code in (pycurl.E_SEND_ERROR, pycurl.E_RECV_ERROR) and began and "CONNECT" not in text:
        # No system error: libcurl itself refused what it read (a header block too large...).
        return SendFailed(ErrorKind.PROTOCOL, text)
    if code == pycurl.E_PARTIAL_FILE:
        return SendFailed(ErrorKind.CONNECTION_RESET, text)
    return SendFailed(ErrorKind.OTHER, text)


class CurlTransport:
    """Sends requests through one libcurl multi handle on the running event loop.

    Pool size, keep-alive, proxy, source address and TLS verification come from ``settings``;
    ``lookup`` replaces the system resolver (tests). One instance belongs to one event loop.
    """

    def __init__(
        self, settings: EgressSettings | None = None, allow_connect: AllowConnect | None = None
    ) -> None:
        self.settings = settings or EgressSettings()
        self._allow = allow_connect
        self._multi: CurlMulti | None = None
        self._idle: list[pycurl.Curl] = []
        # Per idle handle, the options it was last given that repeat from one attempt to the next
        # (URL, address, timeouts): set again only when they change (ADR 0007, drain section).
        self._set: dict[pycurl.Curl, tuple[str, str, int, int]] = {}
        self._interface = f"host!{self.settings.source_address}" if self.settings.source_address else None
        self._suffixes: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._answers: dict[pycurl.Curl, CurlAnswer] = {}

    def _open(self) -> CurlMulti:
        settings = self.settings
        multi = CurlMulti()
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
        # One answer per handle, reset for each transfer, so the callbacks are set once. The
        # answer returned by ``exchange`` is read before the next ``exchange`` can take the
        # handle: ``HttpTransport.send`` turns it into an outcome without awaiting in between.
        answer = CurlAnswer(settings.log_body_limit, settings.read_body_limit, None, self._allow)
        handle.setopt(pycurl.WRITEFUNCTION, answer.write)
        handle.setopt(pycurl.HEADERFUNCTION, answer.lines.append)
        handle.setopt(pycurl.OPENSOCKETFUNCTION, answer.open_socket)
        handle.setopt(pycurl.PREREQFUNCTION, answer.prereq)
        self._answers[handle] = answer
        return handle

    async def exchange(self, attempt: Attempt) -> CurlAnswer:
        """Send ``attempt`` over a connection to its vetted address only (``exchange.Client``)."""
        target, address, headers, body = attempt.target, attempt.address, attempt.headers, attempt.body
        multi = self._multi or self._open()
        settings = self.settings
        pinned = None if settings.proxy else address  # behind a proxy the socket goes to the proxy
        lines = list(map(_LINE.__mod__, headers))
        joined = "".join(lines)
        if "\n" in joined or "\r" in joined:
            # libcurl sends header lines as given: no header injection.
            raise SendFailed(ErrorKind.PROTOCOL, "a header name or value holds a line break")
        # libcurl's own additions: none of Accept, Expect: 100-continue (one more round trip for
        # bodies over 1 KiB) or a form Content-Type for a body that did not say what it is.
        lines += self._additions(headers)
        handle = self._handle()
        # Empty host and port: whatever host libcurl reads in the URL, it connects to ``address``.
        options = (
            target.url,
            f"::{_bracketed(address)}:{target.port}",
            max(1, int(attempt.total * 1000)),
            max(1, int(min(attempt.connect, attempt.total) * 1000)),
        )
        last = self._set.pop(handle, None)
        if last is None or last[0] != options[0]:
            handle.setopt(pycurl.URL, options[0])
        if last is None or last[1] != options[1]:
            handle.setopt(pycurl.CONNECT_TO, [options[1]])
        if last is None or last[2] != options[2]:
            handle.setopt(pycurl.TIMEOUT_MS, options[2])
        if last is None or last[3] != options[3]:
            handle.setopt(pycurl.CONNECTTIMEOUT_MS, options[3])
        handle.setopt(pycurl.HTTPHEADER, lines)
        handle.setopt(pycurl.POSTFIELDSIZE, len(body))
        handle.setopt(pycurl.POSTFIELDS, body)
        answer = self._answers[handle]
        answer.reset(pinned)
        # A cancelled transfer's handle is not put back for reuse (a fresh one is made instead):
        # it may hold a connection left halfway through an exchange.
        try:
            await multi.start(handle)  # the future itself: one coroutine less per request
            code, message = 0, ""
        except pycurl.error as error:
            details: tuple[object, ...] = error.args  # (libcurl's error code, its message)
            code, message = int(str(details[0])), str(details[1])
        except BaseException:
            multi.cancel(handle)
            del self._answers[handle]
            raise
        answer.status = int(handle.getinfo(pycurl.RESPONSE_CODE))
        failure = answer.outcome(code, message, handle)
        self._idle.append(handle)
        self._set[handle] = options
        if failure is not None:
            raise failure
        return answer

    def _additions(self, headers: Sequence[tuple[str, str]]) -> tuple[str, ...]:
        """The lines that switch off libcurl's own additions, by the names of ``headers``:
        every attempt of the dispatcher has the same names, so this is one lookup."""
        names = tuple(map(_NAME, headers))
        known = self._suffixes.get(names)
        if known is None:
            typed = any(name.lower() == "content-type" for name in names)
            known = _NO_ADDITIONS if typed else (*_NO_ADDITIONS, "Content-Type:")
            if len(self._suffixes) > _NAMES_KEPT:
                self._suffixes.clear()
            self._suffixes[names] = known
        return known

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._multi is not None:
            await self._multi.aclose()
            self._multi = None
        for handle in self._idle:
            handle.close()
        self._idle.clear()
        self._set.clear()
        self._answers.clear()
