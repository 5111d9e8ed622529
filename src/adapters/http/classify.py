"""What went wrong, in the delivery log's words: errors to ``ErrorKind``, ``Retry-After`` to a delay.

``classify`` reads an httpx exception together with the chain of causes under it, so it works for
any httpx transport: the operating system's error (refused, reset, unreachable), the resolver's
``gaierror``, the ``ssl`` module's error or the egress policy's refusal decide the kind.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from ...core.outcomes import ErrorKind
from .egress import BlockedTarget

__all__ = ["classify", "parse_retry_after"]

_DETAIL_LIMIT = 300
_REFUSED = {errno.ECONNREFUSED}
_RESET = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ESHUTDOWN}


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _kind_of(error: BaseException) -> ErrorKind | None:
    match error:
        case BlockedTarget():
            return ErrorKind.BLOCKED_TARGET
        case socket.gaierror():
            return ErrorKind.DNS
        case ssl.SSLError() | ssl.CertificateError():
            return ErrorKind.TLS
        case ConnectionRefusedError():
            return ErrorKind.CONNECTION_REFUSED
        case ConnectionResetError() | BrokenPipeError() | ConnectionAbortedError():
            return ErrorKind.CONNECTION_RESET
        case OSError() if error.errno in _REFUSED:
            return ErrorKind.CONNECTION_REFUSED
        case OSError() if error.errno in _RESET:
            return ErrorKind.CONNECTION_RESET
    return None


def _reason(error: BaseException) -> str | None:
    """The operating system's or the TLS library's own words for an error, if it has some."""
    match error:
        # aiohttp's certificate and TLS errors subclass these without their attributes.
        case ssl.SSLCertVerificationError() if getattr(error, "verify_message", None):
            return f"certificate verify failed: {error.verify_message}"
        case ssl.SSLError() if getattr(error, "reason", None):
            return f"TLS error: {error.reason}"
        case OSError() if error.errno is not None and error.errno > 0:
            return os.strerror(error.errno)
        case OSError() if error.strerror:  # getaddrinfo's errors have negative numbers
            return str(error.strerror)
    return None


def _detail(error: BaseException) -> str:
    # The outermost message says where ("Cannot connect to host example.com:443"); the cause's
    # own words say what ("Connection refused").
    text = str(error) or type(error).__name__
    for link in _chain(error):
        reason = _reason(link)
        if reason is not None:
            if reason not in text:
                text = f"{reason}: {text}"
            break
    return text[:_DETAIL_LIMIT]


def classify(error: BaseException) -> tuple[ErrorKind, str]:
    """The log's error kind for an exception raised while sending, and a one-line detail."""
    detail = _detail(error)
    for link in _chain(error):
        kind = _kind_of(link)
        if kind is not None:
            return kind, detail
    # No operating-system cause underneath: httpx's own type says what happened.
    match error:
        case httpx.ConnectTimeout() | httpx.PoolTimeout():
            return ErrorKind.CONNECT_TIMEOUT, detail
        case httpx.ReadTimeout():
            return ErrorKind.READ_TIMEOUT, detail
        case httpx.TimeoutException():
            return ErrorKind.TIMEOUT, detail
        case httpx.RemoteProtocolError() if "disconnected" in detail.lower():
            # The receiver closed the connection without answering.
            return ErrorKind.CONNECTION_RESET, detail
        case httpx.ProtocolError() | httpx.DecodingError():
            return ErrorKind.PROTOCOL, detail
    return ErrorKind.OTHER, detail


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
