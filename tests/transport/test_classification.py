"""Every way an attempt can go wrong ends in the right Outcome, against real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport, parse_retry_after
from attribution_webhooks.core.outcomes import ErrorKind, HttpResponse, TransportFailure
from attribution_webhooks.core.ports import OutboundRequest

from .conftest import DEV, HEADERS, ScriptedServer, fixed_lookup, run, send_once


def _failure(outcome: object) -> TransportFailure:
    assert isinstance(outcome, TransportFailure), outcome
    return outcome


def _response(outcome: object) -> HttpResponse:
    assert isinstance(outcome, HttpResponse), outcome
    return outcome


def test_a_2xx_answer_is_a_response_with_its_body_and_latency(server: ScriptedServer) -> None:
    """A receiver that says 200 gives an HttpResponse with the status, the body and a real latency."""
    outcome = _response(run(send_once(server.url("/ok"))))
    assert (outcome.status, outcome.body, outcome.retry_after) == (200, "OK", None)
    assert timedelta(0) < outcome.elapsed < timedelta(seconds=2)


def test_the_prepared_headers_and_body_arrive_unchanged(server: ScriptedServer) -> None:
    """The request's headers (its User-Agent included, once) and exact body bytes reach the receiver."""
    headers = (*HEADERS, ("User-Agent", "attribution-webhooks/test"), ("X-Attribution-Event-Id", "evt_1"))
    run(send_once(server.url("/ok"), headers=headers))
    [received] = server.requests("/ok")
    assert received.method == "POST"
    assert received.body == b'{"id":"evt_1"}'
    assert received.headers["user-agent"] == "attribution-webhooks/test"
    assert received.headers["x-attribution-signature"] == "0" * 64
    assert received.headers["x-attribution-event-id"] == "evt_1"
    assert received.headers["accept-encoding"] == "identity"
    assert "cookie" not in received.headers


def test_a_request_without_user_agent_gets_the_configured_one(server: ScriptedServer) -> None:
    """Callers that bring no User-Agent still send a clear one."""
    run(send_once(server.url("/ok"), headers=(("Content-Type", "application/json"),)))
    [received] = server.requests("/ok")
    assert received.headers["user-agent"].startswith("attribution-webhooks/")


@pytest.mark.parametrize("status", [400, 404, 410, 500, 502])
def test_a_non_2xx_status_is_a_response_not_a_failure(server: ScriptedServer, status: int) -> None:
    """Error statuses come back as HttpResponse with the status; no Retry-After unless 429/503."""
    outcome = _response(run(send_once(server.url(f"/status/{status}?retry_after=5"))))
    assert outcome.status == status
    assert outcome.body == f"status {status} on purpose"
    assert outcome.retry_after is None


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_parsed_for_429_and_503(server: ScriptedServer, status: int) -> None:
    """A 429 or 503 carries its Retry-After delay."""
    outcome = _response(run(send_once(server.url(f"/status/{status}?retry_after=120"))))
    assert (outcome.status, outcome.retry_after) == (status, timedelta(seconds=120))


def test_retry_after_as_an_http_date_is_parsed() -> None:
    """Retry-After may be an HTTP-date; a past date means now; junk means no advice."""
    now = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(later, now) == timedelta(minutes=5)
    assert parse_retry_after("Sat, 20 Jan 2024 14:00:00 GMT", now) == timedelta(0)
    assert parse_retry_after(" 30 ", now) == timedelta(seconds=30)
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


def test_redirects_are_not_followed(server: ScriptedServer) -> None:
    """A 301 is the outcome itself: the Location is never requested."""
    outcome = _response(run(send_once(server.url("/redirect"))))
    assert outcome.status == 301
    assert server.requests("/elsewhere") == []


def test_connection_refused(server: ScriptedServer) -> None:
    """Nothing listening on the port: connection_refused, quickly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = _failure(run(send_once(f"http://127.0.0.1:{port}/hook", timeout=30)))
    assert outcome.kind is ErrorKind.CONNECTION_REFUSED
    assert "refused" in outcome.detail.lower()
    assert outcome.elapsed < timedelta(seconds=10)  # not retried until the 30 s deadline


def test_connect_timeout() -> None:
    """A listener whose accept queue is full never completes the handshake: connect_timeout."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))  # fills the queue; further SYNs are dropped
        settings = EgressSettings(mode=EgressMode.DEVELOPMENT, connect_timeout=timedelta(seconds=0.3))
        outcome = _failure(run(send_once(f"http://127.0.0.1:{port}/hook", settings, timeout=30)))
    assert outcome.kind is ErrorKind.CONNECT_TIMEOUT
    # Cut by the 0.3 s connect timeout, not the 30 s deadline (the bound leaves room for a busy machine).
    assert timedelta(seconds=0.25) < outcome.elapsed < timedelta(seconds=10)


def test_connect_timeout_when_the_whole_deadline_passes_while_connecting() -> None:
    """When the request's own timeout runs out before a connection is made, it is a connect timeout."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        outcome = _failure(run(send_once(f"http://127.0.0.1:{port}/hook", timeout=0.4)))
    assert outcome.kind is ErrorKind.CONNECT_TIMEOUT
    assert timedelta(seconds=0.35) < outcome.elapsed < timedelta(seconds=5)  # not the 10 s connect timeout


def test_read_timeout_when_the_receiver_hangs(server: ScriptedServer) -> None:
    """Connected, request sent, no answer within the request's timeout: read_timeout at the deadline."""
    outcome = _failure(run(send_once(server.url("/hang"), timeout=0.5)))
    assert outcome.kind is ErrorKind.READ_TIMEOUT
    assert timedelta(seconds=0.45) < outcome.elapsed < timedelta(seconds=5)  # not the 15 s default


def test_the_deadline_covers_a_slow_body_and_keeps_the_status(server: ScriptedServer) -> None:
    """A body still trickling in at the deadline is cut; the status already received is the outcome."""
    outcome = _response(run(send_once(server.url("/slow-body"), timeout=0.7)))
    assert outcome.status == 200
    assert outcome.body.startswith("start:")
    assert outcome.elapsed < timedelta(seconds=5)  # the body would trickle forever


def test_connection_reset(server: ScriptedServer) -> None:
    """A receiver that resets the connection after reading the request: connection_reset."""
    outcome = _failure(run(send_once(server.url("/reset"))))
    assert outcome.kind is ErrorKind.CONNECTION_RESET


def test_closed_without_an_answer_counts_as_reset(server: ScriptedServer) -> None:
    """A receiver that closes the connection without answering: connection_reset too."""
    outcome = _failure(run(send_once(server.url("/close"))))
    assert outcome.kind is ErrorKind.CONNECTION_RESET
    assert "disconnect" in outcome.detail.lower()


def test_an_answer_that_is_not_http_is_a_protocol_error(server: ScriptedServer) -> None:
    """Garbage instead of a status line: protocol_error."""
    outcome = _failure(run(send_once(server.url("/garbage"))))
    assert outcome.kind is ErrorKind.PROTOCOL


def test_dns_failure() -> None:
    """A name that does not resolve: dns_failure, naming the host."""
    lookup = fixed_lookup({})
    outcome = _failure(run(send_once("http://nowhere.example.test/hook", lookup=lookup)))
    assert outcome.kind is ErrorKind.DNS
    assert "nowhere.example.test" in outcome.detail


def test_a_dns_lookup_that_hangs_is_a_dns_failure() -> None:
    """A resolver that does not answer within dns_timeout: dns_failure, not a hang."""

    async def slow(host: str, port: int) -> list[tuple[int, str]]:
        import asyncio

        await asyncio.sleep(10)
        return []

    settings = EgressSettings(mode=EgressMode.DEVELOPMENT, dns_timeout=timedelta(seconds=0.2))
    outcome = _failure(run(send_once("http://slow.example.test/hook", settings, timeout=30, lookup=slow)))
    assert outcome.kind is ErrorKind.DNS
    assert outcome.elapsed < timedelta(seconds=5)  # cut by dns_timeout, not the resolver's 10 s


def test_an_untrusted_certificate_is_a_tls_error(tls_server: ScriptedServer) -> None:
    """A certificate from a CA we do not trust: tls_error."""
    outcome = _failure(run(send_once(tls_server.url("/ok"))))
    assert outcome.kind is ErrorKind.TLS
    assert "certificate" in outcome.detail.lower()


def test_a_certificate_for_another_name_is_a_tls_error(tls_server: ScriptedServer, ca_file: str) -> None:
    """A trusted certificate that does not cover the host name: tls_error."""
    settings = EgressSettings(mode=EgressMode.DEVELOPMENT, ca_file=ca_file)
    lookup = fixed_lookup({"other.example.test": ["127.0.0.1"]})
    outcome = _failure(
        run(send_once(tls_server.url("/ok", host="other.example.test"), settings, lookup=lookup))
    )
    assert outcome.kind is ErrorKind.TLS


def test_https_to_a_plain_http_server_is_a_tls_error() -> None:
    """Speaking TLS to a server that answers in plain HTTP: tls_error."""

    def answer_in_plain_http(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)  # the TLS ClientHello
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        thread = threading.Thread(target=answer_in_plain_http, args=(listener,), daemon=True)
        thread.start()
        outcome = _failure(run(send_once(f"https://127.0.0.1:{listener.getsockname()[1]}/ok")))
        thread.join(2)
    assert outcome.kind is ErrorKind.TLS


def test_a_trusted_certificate_delivers(tls_server: ScriptedServer, ca_file: str) -> None:
    """With the CA trusted, HTTPS works and the name is checked against the certificate."""
    settings = EgressSettings(mode=EgressMode.DEVELOPMENT, ca_file=ca_file)
    lookup = fixed_lookup({"hooks.example.test": ["127.0.0.1"]})
    outcome = _response(
        run(send_once(tls_server.url("/ok", host="hooks.example.test"), settings, lookup=lookup))
    )
    assert outcome.status == 200


def test_a_50_mb_body_is_not_read(server: ScriptedServer) -> None:
    """A huge answer: the status counts, the log keeps 4 KiB, and reading stops near the drain limit."""
    outcome = _response(run(send_once(server.url("/huge"), timeout=30)))
    assert outcome.status == 200
    assert outcome.body == "x" * 4096
    assert outcome.elapsed < timedelta(seconds=10)  # not read until the 30 s deadline
    # The server could push at most the drain limit plus what the socket buffers hold.
    server_stopped_early = server.state.bytes_sent.get("/huge", 0) < 50 * 1024 * 1024
    assert server_stopped_early


def test_an_endless_body_is_not_read(server: ScriptedServer) -> None:
    """A chunked body that never ends does not hang the attempt."""
    outcome = _response(run(send_once(server.url("/endless"), timeout=30)))
    assert outcome.status == 200
    assert outcome.body == "y" * 4096
    assert outcome.elapsed < timedelta(seconds=10)  # not read until the 30 s deadline


def test_a_body_is_cut_without_breaking_a_character(server: ScriptedServer) -> None:
    """The log keeps at most log_body_limit bytes, cut on a character boundary."""
    settings = EgressSettings(mode=EgressMode.DEVELOPMENT, log_body_limit=15)
    outcome = _response(run(send_once(server.url("/big"), settings)))
    assert outcome.body == "012345678901234"


def test_a_compressed_answer_is_shown_decompressed(server: ScriptedServer) -> None:
    """A receiver that gzips anyway: the log shows the text, not the compressed bytes."""
    outcome = _response(run(send_once(server.url("/gzip"))))
    assert outcome.body == "compressed answer: é"


def test_keep_alive_reuses_one_connection(server: ScriptedServer) -> None:
    """Consecutive requests to one host share a pooled connection, a drained 10 KiB body included."""

    async def three() -> None:
        async with HttpTransport(DEV) as transport:
            for path in ("/ok", "/big", "/ok"):
                request = OutboundRequest(server.url(path), HEADERS, b"{}", timedelta(seconds=2))
                assert isinstance(await transport.send(request), HttpResponse)

    run(three())
    assert server.state.connections == 1


def test_the_request_timeout_wins_over_the_default(server: ScriptedServer) -> None:
    """The OutboundRequest's timeout, not the settings' default of 15 s, bounds the attempt."""
    assert EgressSettings().timeout == timedelta(seconds=15)
    outcome = _failure(run(send_once(server.url("/hang"), timeout=0.3)))
    assert outcome.elapsed < timedelta(seconds=5)


def test_a_url_that_is_not_http_is_refused_without_raising() -> None:
    """A malformed or non-http URL is an Outcome too, never an exception."""
    outcome = _failure(run(send_once("ftp://127.0.0.1/file")))
    assert outcome.kind is ErrorKind.BLOCKED_TARGET
    outcome = _failure(run(send_once("http://[::1/hook")))
    assert outcome.kind is ErrorKind.BLOCKED_TARGET
