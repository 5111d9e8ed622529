"""What one HTTP attempt came to, as the transport port reports it."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from attrs import frozen

__all__ = ["ErrorKind", "HttpResponse", "Outcome", "TransportFailure", "is_success"]


class ErrorKind(StrEnum):
    """Why an attempt got no HTTP response. Shown in the delivery log; all are retried."""

    CONNECT_TIMEOUT = "connect_timeout"
    READ_TIMEOUT = "read_timeout"
    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    DNS = "dns_failure"
    TLS = "tls_error"
    BLOCKED_TARGET = "blocked_target"
    PROTOCOL = "protocol_error"
    OTHER = "error"
    #: Not a transport failure: the attempt was started and its outcome lost with its worker.
    WORKER_LOST = "worker_lost"


@frozen
class HttpResponse:
    """The receiver answered. ``body`` is cut to the log's limit; ``retry_after`` is parsed."""

    status: int
    elapsed: timedelta
    body: str = ""
    retry_after: timedelta | None = None


@frozen
class TransportFailure:
    """No usable answer: the connection failed, timed out or was refused by policy."""

    kind: ErrorKind
    elapsed: timedelta
    detail: str = ""


Outcome = HttpResponse | TransportFailure


def is_success(outcome: Outcome) -> bool:
    """Only a 2xx answer delivers; redirects are not followed and count as failures."""
    return isinstance(outcome, HttpResponse) and 200 <= outcome.status < 300
