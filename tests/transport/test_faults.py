"""The receiver fault matrix (issue 10, harness): byte-level misbehaviour from a raw-socket
receiver on 127.0.0.1, through each client, with the Outcome each one must come to.

A status counts only once its whole header block has arrived, a body cut short by the receiver
is a failure (issue 10.1), and one attempt is one request on the wire (issue 10.6).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from attribution_webhooks.adapters.http import HttpTransport
from attribution_webhooks.core.outcomes import ErrorKind, HttpResponse, Outcome, TransportFailure
from attribution_webhooks.core.ports import OutboundRequest
from receivers.faults import SCRIPTS, FaultServer

from .conftest import DEV, HEADERS, run, send_once

RESET, PROTOCOL, READ_TIMEOUT = ErrorKind.CONNECTION_RESET, ErrorKind.PROTOCOL, ErrorKind.READ_TIMEOUT

# fault: (expected status or ErrorKind, Retry-After seconds for a status, request timeout)
MATRIX: dict[str, tuple[int | ErrorKind, float | None, float]] = {
    "status-500": (500, None, 2.0),
    "status-429": (429, 120, 2.0),
    "status-301": (301, None, 2.0),
    "hang": (READ_TIMEOUT, None, 0.5),
    "rst-before-any-byte": (RESET, None, 2.0),
    "fin-before-any-byte": (RESET, None, 2.0),
    "partial-status-line-rst": (RESET, None, 2.0),
    "partial-status-line-fin": (RESET, None, 2.0),
    "partial-headers-rst": (RESET, None, 2.0),
    "partial-headers-fin": (RESET, None, 2.0),
    "headers-no-blank-line-fin": (RESET, None, 2.0),
    "partial-body-fin": (RESET, None, 2.0),
    "partial-body-rst": (RESET, None, 2.0),
    "partial-chunked-fin": (RESET, None, 2.0),
    "continue-then-200": (200, None, 2.0),
    "continue-twice-then-503": (503, 30, 2.0),
    "continue-then-fin": (RESET, None, 2.0),
    "continue-then-partial-rst": (RESET, None, 2.0),
    "trickle-status": (READ_TIMEOUT, None, 1.5),
    "trickle-body": (200, None, 1.5),
    "gzip-bomb": (200, None, 2.0),
    "huge-header-block": (PROTOCOL, None, 2.0),
    "garbage": (PROTOCOL, None, 2.0),
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[FaultServer]:
    with FaultServer.running() as server:
        yield server


def test_the_matrix_covers_every_script() -> None:
    """Every fault the receiver can play has an expected outcome here."""
    assert set(MATRIX) == set(SCRIPTS)


@pytest.mark.parametrize("fault", list(MATRIX))
def test_each_fault_comes_to_its_outcome(receiver: FaultServer, fault: str) -> None:
    """The status (with its Retry-After) or the ErrorKind expected; one request on the wire."""
    expected, retry_after, timeout = MATRIX[fault]
    before = receiver.requests(fault)
    outcome = run(send_once(receiver.url(fault), timeout=timeout))
    if isinstance(expected, ErrorKind):
        assert isinstance(outcome, TransportFailure), outcome
        assert outcome.kind is expected, outcome
    else:
        assert isinstance(outcome, HttpResponse), outcome
        assert outcome.status == expected
        assert outcome.retry_after == (None if retry_after is None else timedelta(seconds=retry_after))
        assert len(outcome.body.encode()) <= 4096
    # Bounded by the request's timeout (with room for a loaded machine), whatever the receiver does.
    assert outcome.elapsed < timedelta(seconds=timeout + 2)
    assert receiver.requests(fault) == before + 1


def test_a_status_without_its_header_block_is_not_a_success(receiver: FaultServer) -> None:
    """Issue 10.1: ``HTTP/1.1 200 OK\\r\\nContent-Len`` then FIN is a failure, never a 200."""
    outcome = run(send_once(receiver.url("partial-headers-fin")))
    assert isinstance(outcome, TransportFailure)
    assert "header" in outcome.detail or "disconnected" in outcome.detail


def test_a_gzip_bomb_is_never_inflated_beyond_the_log_limit(receiver: FaultServer) -> None:
    """16 MiB of zeros in 16 KiB of gzip: the log shows at most 4 KiB of it."""
    outcome = run(send_once(receiver.url("gzip-bomb")))
    assert isinstance(outcome, HttpResponse)
    assert outcome.body == "\0" * 4096


def test_a_body_trickling_past_the_deadline_keeps_its_status(receiver: FaultServer) -> None:
    """Headers complete, body at one byte a second: the deadline cuts it and the 200 stands."""
    outcome = run(send_once(receiver.url("trickle-body"), timeout=1.5))
    assert isinstance(outcome, HttpResponse)
    assert 0 < len(outcome.body) < 40


@pytest.mark.parametrize("fault", ["keep-then-drop", "keep-then-close"])
def test_a_dying_kept_alive_connection_is_not_sent_to_again(fault: str) -> None:
    """Issue 10.6: the receiver answers once on a kept-alive connection, then drops every request
    it reads. The second attempt fails as connection_reset with exactly one request on the wire
    (libcurl would re-send it on a fresh connection by itself); a third is a new attempt."""

    async def three() -> list[Outcome]:
        async with HttpTransport(DEV) as transport:
            request = OutboundRequest(server.url(fault), HEADERS, b"{}", timedelta(seconds=2))
            return [await transport.send(request) for _ in range(3)]

    with FaultServer.running() as server:
        first, second, third = run(three())
        requests, accepted = server.requests(fault), server.state.accepted
    assert isinstance(first, HttpResponse)
    assert first.status == 200
    for later in (second, third):
        assert isinstance(later, TransportFailure), later
        assert later.kind is RESET
    assert requests == 3
    assert accepted == 2  # the kept-alive connection, then one fresh one for the third attempt
