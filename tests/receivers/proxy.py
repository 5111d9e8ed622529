"""A tiny forward proxy in a thread: ``CONNECT`` tunnels and absolute-form ``http://`` requests.

It records each request line (``CONNECT 127.0.0.1:8443 HTTP/1.1``, ``POST http://... HTTP/1.1``)
and the peer address of the client, so a test can tell what went through it and to where.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from .scripted import read_request

__all__ = ["ForwardProxy"]


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        buffer = bytearray()
        while True:
            try:
                parsed = read_request(client, buffer)
            except OSError:
                return
            if parsed is None:
                return
            method, target, headers, body = parsed
            with self.server.lock:
                self.server.seen.append((f"{method} {target}", self.client_address[0]))
            if method == "CONNECT":
                self._tunnel(client, target)
                return
            self._forward(client, method, target, headers, body)

    def _tunnel(self, client: socket.socket, target: str) -> None:
        host, _, port = target.rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        upstream.settimeout(None)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join(5)
        upstream.close()

    def _forward(
        self, client: socket.socket, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> None:
        parts = urlsplit(target)
        lines = [f"{method} {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items() if name != "connection"]
        lines.append("Connection: close")
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=5) as upstream:
            upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            while data := upstream.recv(65536):
                client.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    seen: list[tuple[str, str]]
    lock: threading.Lock


class ForwardProxy:
    """``with ForwardProxy.running() as proxy: proxy.url``; ``proxy.seen`` lists request lines."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self.port = server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[tuple[str, str]]:
        with self._server.lock:
            return list(self._server.seen)

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[ForwardProxy]:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.seen = []
        server.lock = threading.Lock()
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield cls(server)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
