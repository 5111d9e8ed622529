"""What the port promises whichever client is under it (libcurl or httpx), beyond the
classification and egress suites: the lookup cache, cancellation, proxies from the environment,
choosing the client; and the libcurl answer's header lookup."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import pytest

from attribution_webhooks.adapters.http import (
    CurlTransport,
    EgressMode,
    EgressSettings,
    HttpClient,
    HttpTransport,
    HttpxTransport,
)
from attribution_webhooks.adapters.http.curl_transport import CurlAnswer
from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.outcomes import ErrorKind, HttpResponse, TransportFailure
from attribution_webhooks.core.ports import OutboundRequest
from receivers.faults import FaultServer
from receivers.proxy import ForwardProxy

from .conftest import DEV, HEADERS, ScriptedServer, fixed_lookup, run, send_once


def _request(url: str, timeout: float = 2.0) -> OutboundRequest:
    return OutboundRequest(url, HEADERS, b"{}", timedelta(seconds=timeout))


def test_one_lookup_serves_many_deliveries_to_a_host(server: ScriptedServer) -> None:
    """Deliveries to one name, one after another and at once, look the name up once."""
    calls: list[str] = []

    async def lookup(host: str, port: int) -> list[tuple[int, str]]:
        calls.append(host)
        await asyncio.sleep(0.01)
        return [(socket.AF_INET, "127.0.0.1")]

    async def deliveries() -> list[object]:
        async with HttpTransport(DEV, lookup=lookup) as transport:
            url = server.url("/ok", host="hooks.example.test")
            together = await asyncio.gather(*(transport.send(_request(url)) for _ in range(8)))
            return [*together, await transport.send(_request(url))]

    outcomes = run(deliveries())
    assert all(isinstance(o, HttpResponse) and o.status == 200 for o in outcomes)
    assert calls == ["hooks.example.test"]


def test_a_cancelled_attempt_leaves_the_transport_usable(server: ScriptedServer) -> None:
    """An attempt cancelled mid-flight (a worker shutting down) does not spoil the next ones."""

    async def scenario() -> list[object]:
        async with HttpTransport(DEV) as transport:
            hanging = asyncio.ensure_future(transport.send(_request(server.url("/hang"))))
            await asyncio.sleep(0.2)
            hanging.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hanging
            return [await transport.send(_request(server.url(path))) for path in ("/ok", "/big", "/ok")]

    outcomes = run(scenario())
    assert [o.status for o in outcomes if isinstance(o, HttpResponse)] == [200, 200, 200]


def test_a_proxy_in_the_environment_is_not_used(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the configured proxy is used: http_proxy and friends in the environment are ignored."""
    with ForwardProxy.running() as proxy:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        outcome = run(send_once(server.url("/ok")))
        seen = proxy.seen
    assert isinstance(outcome, HttpResponse)
    assert seen == []


def test_a_refused_connection_looks_the_name_up_again(server: ScriptedServer) -> None:
    """After a failed connection the next attempt resolves afresh, so it can reach a new address
    (each attempt is pinned to one vetted address)."""
    answers = iter(["127.0.0.3", "127.0.0.1"])  # nothing listens on 127.0.0.3 at that port

    async def lookup(host: str, port: int) -> list[tuple[int, str]]:
        return [(socket.AF_INET, next(answers))]

    async def twice() -> list[object]:
        async with HttpTransport(DEV, lookup=lookup) as transport:
            url = server.url("/ok", host="hooks.example.test")
            return [await transport.send(_request(url)) for _ in range(2)]

    first, second = run(twice())
    assert isinstance(first, TransportFailure)
    assert first.kind is ErrorKind.CONNECTION_REFUSED
    assert isinstance(second, HttpResponse)
    assert second.status == 200


def test_the_client_is_chosen_by_settings(client: HttpClient) -> None:
    """libcurl unless the settings (``--egress-client`` or ATTRIBUTION_WEBHOOKS_EGRESS_CLIENT)
    say httpx."""
    assert EgressSettings().client is HttpClient.CURL
    assert EgressSettings(client="HTTPX").client is HttpClient.HTTPX  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="client"):
        EgressSettings(client="aiohttp")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="client"):
        EgressSettings(client="requests")  # type: ignore[arg-type]  # what a typo in code would do
    transport = HttpTransport(EgressSettings(mode=EgressMode.DEVELOPMENT))
    assert isinstance(transport.client, CurlTransport) is (client is HttpClient.CURL)
    assert isinstance(transport.client, HttpxTransport) is (client is HttpClient.HTTPX)


def test_the_final_answer_s_headers_are_read_past_interim_and_proxy_answers() -> None:
    """A proxy's CONNECT answer and a 1xx come before the answer; only its own headers count."""
    answer = CurlAnswer(keep=4, budget=8)
    answer.status = 503
    answer.lines += [
        b"HTTP/1.1 200 Connection established\r\n",
        b"Retry-After: 999\r\n",
        b"\r\n",
        b"HTTP/1.1 103 Early Hints\r\n",
        b"Link: </style.css>; rel=preload\r\n",
        b"\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\n",
        b"content-type: text/plain\r\n",
        b"Retry-After:  30 \r\n",
        b"\r\n",
    ]
    assert answer.header("Retry-After") == "30"
    assert answer.header("Content-Type") == "text/plain"
    assert answer.header("Link") is None
    assert answer.write(b"abcdef") is None
    assert answer.write(b"ghi") == 0  # past the budget: libcurl is told to stop
    assert bytes(answer.body) == b"abcd"
    assert answer.complete()
    answer.lines.pop()  # the blank line that ends the block: without it the status does not count
    assert not answer.complete()


def test_an_internationalised_host_name_is_sent_as_punycode(server: ScriptedServer) -> None:
    """A non-ASCII host name is looked up and sent in its ASCII (punycode) form."""
    lookup = fixed_lookup({"xn--bcher-kva.example": ["127.0.0.1"]})
    outcome = run(send_once(f"http://bücher.example:{server.port}/ok", lookup=lookup))
    assert isinstance(outcome, HttpResponse), outcome
    [received] = server.requests("/ok")
    assert received.headers["host"] == f"xn--bcher-kva.example:{server.port}"


def test_a_header_with_a_line_break_is_refused(server: ScriptedServer) -> None:
    """A header value with CR or LF is never sent (it would inject headers): a failure instead."""
    headers = (*HEADERS, ("X-Attribution-Event-Type", "deal.attributed\r\nX-Injected: yes"))
    outcome = run(send_once(server.url("/ok"), headers=headers))
    assert isinstance(outcome, TransportFailure), outcome
    assert outcome.kind is ErrorKind.PROTOCOL
    assert all("x-injected" not in r.headers for r in server.requests())


def test_ipv6_addresses_are_pinned_and_reached() -> None:
    """A name that resolves to ::1, and a bracketed ::1 literal, are both delivered over IPv6."""
    with FaultServer.running("::1") as receiver:
        lookup = fixed_lookup({"v6.example.test": ["::1"]})
        by_name = run(send_once(f"http://v6.example.test:{receiver.port}/status-500", lookup=lookup))
        literal = run(send_once(receiver.url("status-500")))
        requests = receiver.requests("status-500")
    assert [getattr(o, "status", o) for o in (by_name, literal)] == [500, 500]
    assert requests == 2
