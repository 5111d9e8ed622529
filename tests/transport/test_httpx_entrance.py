"""The port over any httpx transport or client: httpx's own, an embedder's, httpx.MockTransport.

Whatever the transport, it is handed a request that names the vetted address, with the name in
the Host header (and SNI); the egress policy runs first, with a resolver we control.
"""

from __future__ import annotations

import gzip
from datetime import timedelta

import httpx
import pytest

from attribution_webhooks.adapters.http import HttpClient, HttpTransport
from attribution_webhooks.core.outcomes import ErrorKind, HttpResponse, Outcome, TransportFailure
from attribution_webhooks.core.ports import OutboundRequest

from .conftest import DEV, HEADERS, ScriptedServer, fixed_lookup, run

LOOKUP = fixed_lookup({"receiver.test": ["127.0.0.1"]})


@pytest.fixture(autouse=True)
def client() -> HttpClient:
    """A given httpx transport or client always means the httpx adapter: these run once."""
    return HttpClient.HTTPX


async def send_through(transport: httpx.AsyncBaseTransport, url: str, timeout: float = 2.0) -> Outcome:
    async with HttpTransport(DEV, transport=transport, lookup=LOOKUP) as port:
        return await port.send(OutboundRequest(url, HEADERS, b'{"id":"evt_1"}', timedelta(seconds=timeout)))


@pytest.mark.parametrize(
    ("path", "status", "body", "retry_after"),
    [
        ("/ok", 200, "OK", None),
        ("/status/503?retry_after=120", 503, "", timedelta(seconds=120)),
        ("/redirect", 301, "", None),
    ],
)
def test_httpx_own_transport_gives_the_same_outcomes(
    server: ScriptedServer, path: str, status: int, body: str, retry_after: timedelta | None
) -> None:
    """Through httpx's default transport: status, kept body and Retry-After as on the lean path."""
    outcome = run(send_through(httpx.AsyncHTTPTransport(), server.url(path)))
    assert isinstance(outcome, HttpResponse), outcome
    assert (outcome.status, outcome.retry_after) == (status, retry_after)
    assert outcome.body.startswith(body)


def test_httpx_own_transport_classifies_a_refused_connection(server: ScriptedServer) -> None:
    """A refused connection is classified from httpx's exception chain."""
    outcome = run(send_through(httpx.AsyncHTTPTransport(), "http://127.0.0.1:9/hook"))
    assert isinstance(outcome, TransportFailure)
    assert outcome.kind is ErrorKind.CONNECTION_REFUSED


def test_a_mock_transport_sees_the_signed_request_and_its_answer_is_read() -> None:
    """httpx.MockTransport (for tests that cannot open a socket) gets the request as sent, and a
    compressed answer is shown decompressed, cut at the log limit."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            429,
            headers={
                "Retry-After": "30",
                "Content-Encoding": "gzip",
                "Content-Type": "text/plain; charset=utf-8",
            },
            content=gzip.compress(("é" * 5000).encode()),
        )

    outcome = run(send_through(httpx.MockTransport(answer), "http://receiver.test/hook"))
    assert isinstance(outcome, HttpResponse)
    assert (outcome.status, outcome.retry_after) == (429, timedelta(seconds=30))
    assert outcome.body == "é" * 2048  # 4 KiB of UTF-8
    (request,) = seen
    assert (request.url.host, request.headers["Host"]) == ("127.0.0.1", "receiver.test")
    assert request.headers["X-Attribution-Signature"] == "0" * 64
    assert request.headers["Accept-Encoding"] == "identity"
    assert request.content == b'{"id":"evt_1"}'


def test_a_mock_transport_that_raises_is_a_classified_failure() -> None:
    """An httpx exception from any transport becomes a TransportFailure, never an exception."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    outcome = run(send_through(httpx.MockTransport(fail), "http://receiver.test/hook"))
    assert isinstance(outcome, TransportFailure)
    assert outcome.kind is ErrorKind.READ_TIMEOUT


def test_an_embedder_s_own_client_sends_without_its_defaults(server: ScriptedServer) -> None:
    """An embedder's AsyncClient carries the delivery; its base URL, default headers, cookies and
    auth are not added, redirects are not followed, and the client is left open for its owner."""

    async def scenario() -> tuple[Outcome, bool]:
        async with httpx.AsyncClient(
            base_url="http://elsewhere.test",
            headers={"X-Embedder": "yes"},
            cookies={"session": "secret"},
            auth=("user", "pass"),
            follow_redirects=True,
        ) as client:
            async with HttpTransport(DEV, client=client, lookup=LOOKUP) as port:
                request = OutboundRequest(
                    server.url("/redirect", host="receiver.test"), HEADERS, b"{}", timedelta(seconds=2)
                )
                outcome = await port.send(request)
            return outcome, client.is_closed

    outcome, closed = run(scenario())
    assert isinstance(outcome, HttpResponse)
    assert outcome.status == 301
    assert not closed
    [received] = server.requests()
    assert received.path == "/redirect"
    assert received.headers["host"] == f"receiver.test:{server.port}"
    assert not {"x-embedder", "cookie", "authorization"} & set(received.headers)
