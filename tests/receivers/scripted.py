"""A receiver that misbehaves on request: a raw-socket HTTP/1.1 server in a thread.

The path of each request picks what it does, so one server can play every receiver a test needs:

- ``/ok`` (and any other path): 200 "OK"
- ``/status/CODE``: that status, with ``?retry_after=VALUE`` as a Retry-After header
- ``/redirect``: 301 to ``/elsewhere``
- ``/hang``: read the request, never answer (until the client goes away or the server stops)
- ``/reset``: read the request, then reset the connection (RST)
- ``/close``: read the request, then close the connection without a word (FIN)
- ``/huge``: 200 announcing 50 MB, then send until the client stops reading
- ``/endless``: 200 with a chunked body that never ends
- ``/garbage``: answer with something that is not HTTP
- ``/slow-body``: 200 with headers at once, then one byte every 0.2 s
- ``/gzip``: 200 with a gzip-encoded body although identity was asked for
- ``/big``: 200 with a 10 KiB body (more than the log keeps, less than the drain limit)

It records every request (path, headers, body, peer address) and counts connections.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

__all__ = ["ReceivedRequest", "ScriptedServer", "free_port", "read_request"]

HUGE = 50 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: str


@dataclass
class _State:
    requests: list[ReceivedRequest] = field(default_factory=list)
    connections: int = 0
    bytes_sent: dict[str, int] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def read_request(stream: socket.socket, buffer: bytearray) -> tuple[str, str, dict[str, str], bytes] | None:
    while b"\r\n\r\n" not in buffer:
        data = stream.recv(65536)
        if not data:
            return None
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buffer) < end + 4 + length:
        data = stream.recv(65536)
        if not data:
            return None
        buffer += data
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return method, target, headers, body


def _simple(status: int, body: bytes = b"", extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} Status\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        state = self.server.state
        with state.lock:
            state.connections += 1
        conn: socket.socket = self.request
        if self.server.tls is not None:
            try:
                conn = self.server.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused our certificate (or spoke plain HTTP)
        buffer = bytearray()
        while not state.stopping.is_set():
            try:
                parsed = read_request(conn, buffer)
            except OSError:
                return
            if parsed is None:
                return
            method, target, headers, body = parsed
            parts = urlsplit(target)
            with state.lock:
                state.requests.append(
                    ReceivedRequest(method, parts.path, headers, body, self.client_address[0])
                )
            try:
                if not self._answer(conn, parts.path, parse_qs(parts.query)):
                    return
            except OSError:
                return

    def _answer(self, conn: socket.socket, path: str, query: dict[str, list[str]]) -> bool:
        """Answer one request; False to end the connection."""
        state = self.server.state
        if path.startswith("/status/"):
            extra = f"Retry-After: {query['retry_after'][0]}\r\n" if "retry_after" in query else ""
            code = int(path.rsplit("/", 1)[1])
            conn.sendall(_simple(code, f"status {code} on purpose".encode(), extra))
        elif path == "/redirect":
            conn.sendall(_simple(301, b"moved", "Location: /elsewhere\r\n"))
        elif path == "/hang":
            state.stopping.wait(30)
            return False
        elif path == "/reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return False
        elif path == "/close":
            conn.close()
            return False
        elif path == "/huge":
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n".encode())
            self._stream(conn, path, HUGE, b"x" * _CHUNK)
            return False
        elif path == "/endless":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (_CHUNK, b"y" * _CHUNK)
            self._stream(conn, path, None, chunk)
            return False
        elif path == "/garbage":
            conn.sendall(b"SURPRISE! this is not HTTP at all\r\n\r\n")
            return False
        elif path == "/slow-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstart:")
            for _ in range(94):
                if state.stopping.wait(0.2):
                    return False
                conn.sendall(b".")
            return False
        elif path == "/gzip":
            body = gzip.compress("compressed answer: é".encode())
            conn.sendall(_simple(200, body, "Content-Encoding: gzip\r\n"))
        elif path == "/big":
            conn.sendall(_simple(200, ("0123456789" * 1024).encode()))
        else:
            conn.sendall(_simple(200, b"OK"))
        return True

    def _stream(self, conn: socket.socket, path: str, limit: int | None, chunk: bytes) -> None:
        state = self.server.state
        sent = 0
        try:
            while (limit is None or sent < limit) and not state.stopping.is_set():
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the client stopped reading and closed: that is the point
        finally:
            with state.lock:
                state.bytes_sent[path] = state.bytes_sent.get(path, 0) + sent


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    state: _State
    tls: ssl.SSLContext | None = None


class ScriptedServer:
    """Start with ``ScriptedServer.running(port=0)``; ``url(path)`` addresses it."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self.state = server.state
        self.host, self.port = server.server_address[:2]

    @classmethod
    @contextlib.contextmanager
    def running(
        cls, port: int = 0, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> Iterator[ScriptedServer]:
        server = _Server((host, port), _Handler)
        server.state = _State()
        server.tls = tls
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield cls(server)
        finally:
            server.state.stopping.set()
            server.shutdown()
            server.server_close()
            thread.join(5)

    def url(self, path: str = "/ok", host: str | None = None) -> str:
        scheme = "https" if self._server.tls is not None else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def requests(self, path: str | None = None) -> list[ReceivedRequest]:
        with self.state.lock:
            return [r for r in self.state.requests if path is None or r.path == path]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
