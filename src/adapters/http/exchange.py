"""What an HTTP client adapter owes ``HttpTransport``: one exchange with a vetted address, and
its failures already in the delivery log's words (``ErrorKind``), never another library's."""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Protocol

from attrs import frozen

from ...core.outcomes import ErrorKind
from .hosts import Target

__all__ = ["AllowConnect", "Attempt", "Client", "Reply", "SendFailed", "errno_kind"]

_DETAIL_LIMIT = 300
_REFUSED = frozenset({errno.ECONNREFUSED})
_RESET = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ESHUTDOWN})

# Called with the address and port a new connection is about to be opened to; False refuses it.
# Tests count connections with it; the adapters' own guard (only the vetted address) runs first.
AllowConnect = Callable[[str, int], bool]


class SendFailed(Exception):
    """No usable answer: ``kind`` for the log, ``detail`` in the client's or the system's words."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail[:_DETAIL_LIMIT]


class Reply(Protocol):
    """A whole answer: a final status whose header block arrived complete, and the body kept."""

    status: int

    @property
    def body(self) -> bytes | bytearray: ...

    def header(self, name: str) -> str | None: ...

    def mentions(self, fragment: bytes) -> bool:
        """Whether ``fragment`` (lower case) occurs in any header line, names and values read in
        lower case: False means surely absent, so a caller may skip reading those headers."""
        ...


@frozen
class Attempt:
    """One POST as a client is to send it: to ``target``, over a connection to ``address`` (the
    vetted one) and nothing else, within ``total`` seconds, ``connect`` of them to connect."""

    target: Target
    address: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    total: float
    connect: float


class Client(Protocol):
    """One HTTP client under the port (libcurl, httpx)."""

    async def exchange(self, attempt: Attempt) -> Reply:
        """Send ``attempt`` and return the answer, its body read up to the settings' limits.

        Raises ``SendFailed``; a status counts only once its whole header block has arrived,
        and a body cut short by the receiver is a failure.
        """
        ...

    async def aclose(self) -> None:
        """Close every pooled connection."""
        ...


def errno_kind(number: int) -> ErrorKind | None:
    """The kind an operating-system error number means, if it says something definite."""
    if number in _REFUSED:
        return ErrorKind.CONNECTION_REFUSED
    if number in _RESET:
        return ErrorKind.CONNECTION_RESET
    return None
