"""Fixtures for the HTTP transport tests: real servers on 127.0.0.1, never mocks of httpx."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
import trustme

from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpClient, HttpTransport, Lookup
from attribution_webhooks.core.outcomes import Outcome
from attribution_webhooks.core.ports import OutboundRequest

# The receivers live beside this package (tests/receivers); make them importable however pytest
# was started.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from receivers.scripted import ScriptedServer

T = TypeVar("T")
DEV = EgressSettings(mode=EgressMode.DEVELOPMENT)
HEADERS = (("Content-Type", "application/json"), ("X-Attribution-Signature", "0" * 64))


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def send_once(
    url: str,
    settings: EgressSettings = DEV,
    timeout: float = 2.0,
    lookup: Lookup | None = None,
    headers: tuple[tuple[str, str], ...] = HEADERS,
) -> Outcome:
    """One POST through a fresh HttpTransport."""
    kwargs: dict[str, Any] = {"lookup": lookup} if lookup is not None else {}
    async with HttpTransport(settings, **kwargs) as transport:
        return await transport.send(
            OutboundRequest(url, headers, b'{"id":"evt_1"}', timedelta(seconds=timeout))
        )


def fixed_lookup(table: dict[str, list[str]]) -> Lookup:
    """A resolver answering from ``table``; unknown names do not exist."""

    async def lookup(host: str, port: int) -> list[tuple[int, str]]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host}")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip) for ip in table[host]]

    return lookup


@pytest.fixture(autouse=True, params=list(HttpClient), ids=[client.value for client in HttpClient])
def client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> HttpClient:
    """Every transport test runs over each client the port can use: libcurl (the default) and
    httpx (AsyncClient on its own transport). The settings a test builds get this client put into them."""
    chosen: HttpClient = request.param
    original = HttpTransport.__init__

    def init(self: HttpTransport, settings: EgressSettings | None = None, **kwargs: Any) -> None:
        original(self, attrs.evolve(settings or EgressSettings(), client=chosen), **kwargs)

    monkeypatch.setattr(HttpTransport, "__init__", init)
    return chosen


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer.running() as running:
        yield running


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[ScriptedServer]:
    """The scripted server behind TLS, with a certificate for hooks.example.test and 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.example.test", "127.0.0.1").configure_cert(context)
    with ScriptedServer.running(tls=context) as running:
        yield running
