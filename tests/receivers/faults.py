"""A receiver that fails at the byte level: a raw-socket HTTP/1.1 server on 127.0.0.1.

Each request's path names a script (``/FAULT``, see ``SCRIPTS``): a list of steps that write
bytes, wait, trickle, or end the connection with a FIN (close) or an RST (SO_LINGER 0). The
server counts accepted connections and complete requests, so a test can tell how many requests
one attempt put on the wire.

``/keep-then-drop`` answers the first request on the server with 200 and keeps the connection
open; every later request is read in full and its connection dropped without a byte (RST, or
FIN for ``/keep-then-close``): what a receiver whose keep-alive timer fires just as a pooled
connection is reused looks like.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from .scripted import read_request

__all__ = ["SCRIPTS", "FaultServer"]

Step = tuple[str, object]


def _bomb() -> bytes:
    # 16 MiB of zeros gzip to about 16 KiB: far more than a log keeps if anything inflated it.
    return gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)


def _head(status: str, length: int, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {length}\r\n{extra}\r\n".encode()


_BOMB = _bomb()
_HUGE_HEADERS = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 100) for i in range(20_000))  # about 2.3 MB

SCRIPTS: dict[str, list[Step]] = {
    "status-500": [("send", _head("500 Internal Server Error", 4) + b"oops")],
    "status-429": [("send", _head("429 Too Many Requests", 0, "Retry-After: 120\r\n"))],
    "status-301": [("send", _head("301 Moved Permanently", 0, "Location: /elsewhere\r\n"))],
    "hang": [("sleep", 30.0)],
    "rst-before-any-byte": [("rst", None)],
    "fin-before-any-byte": [("fin", None)],
    "partial-status-line-rst": [("send", b"HTTP/1.1 20"), ("rst", None)],
    "partial-status-line-fin": [("send", b"HTTP/1.1 20"), ("fin", None)],
    "partial-headers-rst": [("send", b"HTTP/1.1 200 OK\r\nContent-Len"), ("rst", None)],
    "partial-headers-fin": [("send", b"HTTP/1.1 200 OK\r\nContent-Len"), ("fin", None)],
    "headers-no-blank-line-fin": [("send", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"), ("fin", None)],
    "partial-body-fin": [("send", _head("200 OK", 100) + b"only ten.."), ("fin", None)],
    "partial-body-rst": [("send", _head("200 OK", 100) + b"only ten.."), ("rst", None)],
    "partial-chunked-fin": [
        ("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        ("fin", None),
    ],
    "continue-then-200": [("send", b"HTTP/1.1 100 Continue\r\n\r\n" + _head("200 OK", 2) + b"OK")],
    "continue-twice-then-503": [
        (
            "send",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\nRetry-After: 999\r\n\r\n"
            + _head("503 Service Unavailable", 0, "Retry-After: 30\r\n"),
        )
    ],
    "continue-then-fin": [("send", b"HTTP/1.1 100 Continue\r\n\r\n"), ("fin", None)],
    "continue-then-partial-rst": [
        ("send", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Len"),
        ("rst", None),
    ],
    "trickle-status": [("trickle", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")],
    "trickle-body": [("send", _head("200 OK", 40)), ("trickle", b"x" * 40)],
    "gzip-bomb": [("send", _head("200 OK", len(_BOMB), "Content-Encoding: gzip\r\n") + _BOMB)],
    "huge-header-block": [
        ("send", b"HTTP/1.1 200 OK\r\n" + _HUGE_HEADERS),
        ("send", b"Content-Length: 0\r\n\r\n"),
    ],
    "garbage": [("send", b"SURPRISE! this is not HTTP\r\n\r\n"), ("fin", None)],
}


@dataclass
class _State:
    accepted: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    kept_one: bool = False


def _rst(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class FaultServer:
    """Start with ``FaultServer.running()``; ``url(fault)`` addresses a script."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, 0), family=family, backlog=64)
        self.host, self.port = self._listener.getsockname()[:2]
        self.state = _State()
        self._threads: list[threading.Thread] = []

    @classmethod
    @contextlib.contextmanager
    def running(cls, host: str = "127.0.0.1") -> Iterator[FaultServer]:
        server = cls(host)
        acceptor = threading.Thread(target=server._accept, daemon=True)
        acceptor.start()
        try:
            yield server
        finally:
            server.state.stopping.set()
            with contextlib.suppress(OSError):
                socket.create_connection((server.host, server.port), timeout=1).close()  # wake accept()
            acceptor.join(5)
            server._listener.close()

    def url(self, fault: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{fault}"

    def requests(self, fault: str | None = None) -> int:
        with self.state.lock:
            if fault is None:
                return sum(self.state.requests.values())
            return self.state.requests.get(fault, 0)

    def _accept(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            if self.state.stopping.is_set():
                conn.close()
                return
            with self.state.lock:
                self.state.accepted += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = bytearray()
        try:
            while not self.state.stopping.is_set():
                parsed = read_request(conn, buffer)
                if parsed is None:
                    break
                fault = parsed[1].lstrip("/").split("?", 1)[0]
                with self.state.lock:
                    self.state.requests[fault] = self.state.requests.get(fault, 0) + 1
                if not self._play(conn, fault):
                    return
        except OSError:
            pass
        with contextlib.suppress(OSError):
            conn.close()

    def _play(self, conn: socket.socket, fault: str) -> bool:
        """Run one script; False once the connection is gone."""
        if fault in ("keep-then-drop", "keep-then-close"):
            with self.state.lock:
                first, self.state.kept_one = not self.state.kept_one, True
            if first:
                conn.sendall(_head("200 OK", 2) + b"OK")
                return True
            _rst(conn) if fault == "keep-then-drop" else conn.close()
            return False
        for action, argument in SCRIPTS[fault]:
            if action == "send":
                assert isinstance(argument, bytes)
                conn.sendall(argument)
            elif action == "sleep":
                assert isinstance(argument, float)
                self.state.stopping.wait(argument)
            elif action == "trickle":
                assert isinstance(argument, bytes)
                for byte in argument:
                    if self.state.stopping.wait(1.0):
                        break
                    conn.sendall(bytes([byte]))
            elif action == "rst":
                _rst(conn)
                return False
            elif action == "fin":
                conn.close()
                return False
        if fault in ("hang", "trickle-status", "trickle-body"):
            conn.close()
            return False
        return True
