"""Helpers of the dashboard tests: the service under test, a free port, signing in."""

from __future__ import annotations

import http.server
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from attribution_webhooks.app.bootstrap import Runtime

__all__ = ["CHROMIUM", "Received", "Receiver", "Service", "User", "free_port", "sign_in"]

#: Debian's Chromium: Playwright drives it; no browser is downloaded.
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Service:
    """A running ``serve``: its URL, the first account's key, another account's key."""

    url: str
    key: str
    other_key: str
    database: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sign_in(page: Any, service: Service, key: str) -> None:
    """Sign in through the form, as a user does."""
    page.goto(f"{service.url}/dashboard/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/webhooks")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP receiver on a fixed port: ``stop()`` refuses connections, ``start()`` answers
    again. Its answer holds markup, which the dashboard must show as text."""

    port: int
    answer: bytes = b'OK <img src=x onerror="window.__xss=2">'
    requests: list[Received] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/attribution"

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(Received(dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class User:
    """One account's key and a client that keeps its cookies, as a browser does."""

    runtime: Runtime
    client: TestClient[Any]
    account: str
    key: str
    csrf: str = ""

    @classmethod
    def create(cls, runtime: Runtime, client: TestClient[Any], account: str) -> User:
        now = datetime.now(UTC)
        runtime.keys.create_account(account, account, now)
        _, key = runtime.keys.create_key(account, "tests", now)
        return cls(runtime, client, account, key)

    def sign_in(self) -> User:
        form = self.client.get("/dashboard/sign-in")
        self.csrf = _CSRF.search(form.text).group(1)  # type: ignore[union-attr]
        answer = self.post("/dashboard/sign-in", {"api_key": self.key, "next": "/dashboard/webhooks"})
        assert answer.status_code == 303, answer.text
        self.csrf = _CSRF.search(self.client.get("/dashboard/webhooks").text).group(1)  # type: ignore[union-attr]
        return self

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, csrf: bool = True) -> Any:
        form = {**(data or {}), **({"csrf_token": self.csrf} if csrf else {})}
        return self.client.post(path, data=form, follow_redirects=False)

    def api(self, method: str, path: str, json: Any = None) -> Any:
        return self.client.request(method, path, json=json, headers={"X-API-Key": self.key})

    def add_webhook(self, url: str = "https://receiver.example/hooks", **fields: Any) -> str:
        answer = self.post("/dashboard/webhooks/new", {"url": url, "events": ["deal.attributed"], **fields})
        assert answer.status_code == 201, answer.text
        return re.search(r"/dashboard/webhooks/(wh_\w+)", answer.text).group(1)  # type: ignore[union-attr]

    def log_size(self) -> int:
        with self.runtime.store.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one())
