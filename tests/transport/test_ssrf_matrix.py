"""The SSRF matrix (issue 10, harness; defect 10.3): in production mode, every internal target —
named through a resolver we control, or spelled as a literal in any of the ways some parser
reads as an IP address — is refused at registration and at send time through each client, with
no connection made.

Nothing here sends beyond loopback: the resolver is a table; every connection a client would
open goes through the transport's ``allow_connect`` hook first, which counts it and refuses it;
and listeners on 127.0.0.1, 127.5.6.7 and ::1 (the matrix's port) count what they accept.
"""

# ruff: noqa: RUF001  # fullwidth digits and full stops are the hostile spellings under test
from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta

import attrs

from attribution_webhooks.adapters.http import EgressSettings, HttpTransport, check_target
from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.outcomes import ErrorKind, HttpResponse, TransportFailure
from attribution_webhooks.core.ports import OutboundRequest

from .conftest import HEADERS, fixed_lookup, run

PROD = EgressSettings()
LISTEN_ON = ("127.0.0.1", "127.5.6.7", "::1")

# Names the resolver answers, each with internal addresses only (or a public and an internal one).
RESOLVED: dict[str, list[str]] = {
    "loopback.test": ["127.0.0.1"],
    "loopback-other.test": ["127.5.6.7"],
    "rfc1918-10.test": ["10.0.0.1"],
    "rfc1918-172.test": ["172.31.255.254"],
    "rfc1918-192.test": ["192.168.1.1"],
    "link-local.test": ["169.254.1.1"],
    "metadata.test": ["169.254.169.254"],
    "cgnat.test": ["100.64.0.1"],
    "cgnat-top.test": ["100.127.255.254"],
    "unspecified.test": ["0.0.0.0"],
    "broadcast.test": ["255.255.255.255"],
    "multicast.test": ["224.0.0.1"],
    "v6-loopback.test": ["::1"],
    "v6-unspecified.test": ["::"],
    "v6-ula.test": ["fd00::1"],
    "v6-ula-fc.test": ["fc00::1"],
    "v6-link-local.test": ["fe80::1"],
    "v6-link-local-zone.test": ["fe80::1%eth0"],
    "v4-mapped-loopback.test": ["::ffff:127.0.0.1"],
    "v4-mapped-private.test": ["::ffff:10.0.0.1"],
    "v4-mapped-metadata.test": ["::ffff:169.254.169.254"],
    "v4-compatible.test": ["::127.0.0.1"],
    "nat64-loopback.test": ["64:ff9b::7f00:1"],
    "nat64-metadata.test": ["64:ff9b::a9fe:a9fe"],
    "nat64-private.test": ["64:ff9b::a00:1"],
    "nat64-local-use.test": ["64:ff9b:1::1"],
    "6to4-loopback.test": ["2002:7f00:1::1"],
    "6to4-metadata.test": ["2002:a9fe:a9fe::1"],
    "6to4-private.test": ["2002:a00:1::1"],
    "mixed-v4.test": ["93.184.216.34", "10.0.0.1"],
    "mixed-v6.test": ["2606:4700::1111", "::1"],
    "not-an-address.test": ["localhost"],
}

# Hosts written into the URL itself: loopback, metadata and private ranges in every spelling.
LITERALS = [
    "127.0.0.1",
    "127。0。0。1",
    "127．0．0．1",
    "127｡0｡0｡1",
    "１２７.０.０.１",
    "127.0.0.1.",
    "0x7f000001",
    "0x7f.0.0.1",
    "2130706433",
    "127.1",
    "127.0.1",
    "0177.0.0.1",
    "0177.0.0.01",
    "017700000001",
    "127.5.6.7",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::]",
    "localhost",
    "LOCALHOST.",
    "ⓛocalhost",
    "api.localhost",
    "169.254.169.254",
    "0251.0376.0251.0376",
    "0xa9fea9fe",
    "2852039166",
    "[::ffff:a9fe:a9fe]",
    "[fd00::1]",
    "[fe80::1]",
    "[fe80::1%25lo]",
    "10.1",
    "0",
    "0.0.0.0",
    "100.64.0.1",
    "127%2e0%2e0%2e1",
    "user@127.0.0.1",
    "public.test\\@127.0.0.1",
]


def _cases(port: int) -> list[tuple[str, str]]:
    """(case, URL) pairs: every resolved name, every literal, and plain http to a public name."""
    named = [(name, f"https://{name}:{port}/hook") for name in RESOLVED]
    literal = [(host, f"https://{host}:{port}/hook") for host in LITERALS]
    return [*named, *literal, ("http-in-production", f"http://public.test:{port}/hook")]


@contextlib.contextmanager
def counting_listeners() -> Iterator[tuple[int, list[str]]]:
    """Listen on one port at every LISTEN_ON address; yields the port and the accepts seen."""
    first = socket.create_server(("127.0.0.1", 0))
    port = first.getsockname()[1]
    sockets = [first] + [
        socket.create_server((address, port), family=socket.AF_INET6 if ":" in address else socket.AF_INET)
        for address in LISTEN_ON[1:]
    ]
    accepted: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        with selectors.DefaultSelector() as selector:
            for listener in sockets:
                selector.register(listener, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in selector.select(0.05):
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    accepted.append(str(key.fileobj.getsockname()[0]))  # type: ignore[union-attr]
                    conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield port, accepted
    finally:
        stop.set()
        thread.join(2)
        for listener in sockets:
            listener.close()


def test_every_internal_target_is_refused_at_registration() -> None:
    """check_target (registration and URL updates) refuses every case as a ValidationError on url."""
    lookup = fixed_lookup(RESOLVED | {"public.test": ["93.184.216.34"]})
    with counting_listeners() as (port, accepted):
        cases = _cases(port)
        passed, fields = [], set()
        for case, url in cases:
            try:
                run(check_target(url, PROD, lookup))
                passed.append(case)
            except ValidationError as error:
                fields.add(error.field)
    assert (len(cases), passed, fields, accepted) == (len(RESOLVED) + len(LITERALS) + 1, [], {"url"}, [])


def test_every_internal_target_is_refused_at_send_time_with_no_connection() -> None:
    """Through the client under test: every case is blocked_target; 0 connection attempts reach
    the hook and 0 connections reach the listeners."""
    attempts: list[tuple[str, int]] = []

    def refuse(address: str, port: int) -> bool:
        attempts.append((address, port))
        return False

    lookup = fixed_lookup(RESOLVED | {"public.test": ["93.184.216.34"]})
    with counting_listeners() as (port, accepted):
        cases = _cases(port)

        async def send_all() -> dict[str, object]:
            outcomes: dict[str, object] = {}
            for case, url in cases:
                async with HttpTransport(PROD, lookup=lookup, allow_connect=refuse) as transport:
                    request = OutboundRequest(url, HEADERS, b"{}", timedelta(seconds=2))
                    outcomes[case] = await transport.send(request)
            return outcomes

        outcomes = run(send_all())
    not_blocked = {
        case: outcome
        for case, outcome in outcomes.items()
        if not (isinstance(outcome, TransportFailure) and outcome.kind is ErrorKind.BLOCKED_TARGET)
    }
    assert len(outcomes) == len(RESOLVED) + len(LITERALS) + 1
    assert (not_blocked, attempts, accepted) == ({}, [], [])


def test_a_dns_answer_that_changes_after_registration_is_refused_at_send_time() -> None:
    """Public at registration, loopback at delivery: registration accepts, the send is blocked,
    nothing connects."""
    answers = {"rebind.test": ["93.184.216.34"]}
    lookup = fixed_lookup(answers)
    attempts: list[tuple[str, int]] = []
    with counting_listeners() as (port, accepted):
        url = f"https://rebind.test:{port}/hook"
        run(check_target(url, PROD, lookup))
        answers["rebind.test"] = ["127.0.0.1"]

        async def send() -> object:
            async with HttpTransport(
                PROD, lookup=lookup, allow_connect=lambda a, p: bool(attempts.append((a, p)))
            ) as transport:
                return await transport.send(OutboundRequest(url, HEADERS, b"{}", timedelta(seconds=2)))

        outcome = run(send())
    assert isinstance(outcome, TransportFailure)
    assert outcome.kind is ErrorKind.BLOCKED_TARGET
    assert (attempts, accepted) == ([], [])


def test_the_connection_goes_only_to_the_address_vetted_when_the_answer_changes() -> None:
    """The resolver answers an allowed address (127.0.0.2, opened by allow_networks) once and
    loopback 127.0.0.1 afterwards: the delivery connects to the first answer, and the client
    never resolves the name again for itself."""
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[tuple[int, str]]:
        calls.append(host)
        return [(socket.AF_INET, "127.0.0.2" if len(calls) == 1 else "127.0.0.1")]

    settings = attrs.evolve(PROD, allow_networks=("127.0.0.2/32",))
    with contextlib.ExitStack() as stack:
        port, internal = stack.enter_context(counting_listeners())
        allowed = stack.enter_context(socket.create_server(("127.0.0.2", port)))
        allowed.settimeout(5)
        url = f"https://rebind.test:{port}/hook"

        async def send() -> object:
            async with HttpTransport(settings, lookup=rebinding) as transport:
                return await transport.send(OutboundRequest(url, HEADERS, b"{}", timedelta(seconds=1)))

        sending = threading.Thread(target=lambda: results.append(run(send())))
        results: list[object] = []
        sending.start()
        conn, _ = allowed.accept()  # the vetted address gets the connection...
        conn.close()  # ...and we hang up: TLS fails, which is fine here
        sending.join(5)
    [outcome] = results
    assert not isinstance(outcome, HttpResponse)
    assert calls == ["rebind.test"]
    assert internal == []
