"""The SSRF guard, the proxy and the source address: where deliveries may go, and from where.

No test sends anything beyond 127.0.0.0/8: internal and public addresses appear only in answers
of a scripted resolver, and a blocked target is never connected to.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import pytest

from attribution_webhooks.adapters.http import (
    EgressMode,
    EgressSettings,
    HttpTransport,
    blocked_reason,
    check_target,
    check_url,
)
from attribution_webhooks.adapters.http.egress import BlockedTarget
from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.outcomes import ErrorKind, HttpResponse, TransportFailure
from attribution_webhooks.core.ports import OutboundRequest
from receivers.proxy import ForwardProxy

from .conftest import HEADERS, ScriptedServer, fixed_lookup, run, send_once

PROD = EgressSettings()
LOCAL = ("127.0.0.0/8",)  # production mode, with loopback allowed so that a test can reach a receiver


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.10",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "2001:db8::1",
    ],
)
def test_internal_addresses_are_blocked(address: str) -> None:
    """Loopback, private, link-local, metadata, CGNAT, multicast, reserved and disguised IPv6 forms."""
    assert blocked_reason(address) is not None


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    """Public unicast addresses may receive deliveries."""
    assert blocked_reason(address) is None


def test_the_metadata_address_is_named_in_the_reason() -> None:
    """The reason says what the address is, for the delivery log."""
    assert blocked_reason("169.254.169.254") == "169.254.169.254 is the cloud metadata address"
    assert "embeds 127.0.0.1 is a loopback address" in (blocked_reason("::ffff:127.0.0.1") or "")


def test_allowed_networks_are_exempt() -> None:
    """An operator's allow_networks let production mode reach a chosen internal range, and only it."""
    settings = EgressSettings(allow_networks=("10.20.0.0/16",))
    assert blocked_reason("10.20.1.5", settings.allow_networks) is None
    assert blocked_reason("10.21.1.5", settings.allow_networks) is not None


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://hooks.example.com/x", "https"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://[::1]:8443/x", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://localhost/x", "loopback name"),
        ("https://api.localhost./x", "loopback name"),
        ("ftp://hooks.example.com/x", "scheme"),
    ],
)
def test_check_url_refuses_what_needs_no_dns(url: str, fragment: str) -> None:
    """Scheme, IP literals and localhost names are refused in production mode before any lookup."""
    with pytest.raises(BlockedTarget, match=fragment):
        check_url(url, PROD)


def test_development_mode_allows_http_and_loopback() -> None:
    """The README demo and the tests deliver to http://127.0.0.1."""
    dev = EgressSettings(mode=EgressMode.DEVELOPMENT)
    check_url("http://127.0.0.1:8000/hook", dev)
    check_url("http://localhost:8000/hook", dev)


def test_check_target_resolves_the_name_at_registration() -> None:
    """Registration refuses a name that resolves to an internal address, as a ValidationError on url."""
    lookup = fixed_lookup({"evil.example.com": ["169.254.169.254"], "ok.example.com": ["93.184.216.34"]})
    with pytest.raises(ValidationError, match="cloud metadata") as caught:
        run(check_target("https://evil.example.com/hook", PROD, lookup))
    assert caught.value.field == "url"
    run(check_target("https://ok.example.com/hook", PROD, lookup))


def test_check_target_accepts_a_name_that_does_not_resolve_yet() -> None:
    """A host without DNS yet may be registered; every delivery checks again."""
    run(check_target("https://not-yet.example.com/hook", PROD, fixed_lookup({})))


def test_one_internal_answer_blocks_the_whole_name() -> None:
    """A name resolving to public and internal addresses is refused, not half-trusted."""
    lookup = fixed_lookup({"mixed.example.com": ["93.184.216.34", "10.0.0.5"]})
    with pytest.raises(ValidationError, match=r"10\.0\.0\.5"):
        run(check_target("https://mixed.example.com/hook", PROD, lookup))


def test_production_mode_blocks_loopback_at_send_time(server: ScriptedServer) -> None:
    """http:// and loopback targets are refused when sending, and nothing reaches the receiver."""
    outcome = run(send_once(server.url("/ok"), PROD))
    assert isinstance(outcome, TransportFailure)
    assert outcome.kind is ErrorKind.BLOCKED_TARGET
    outcome = run(send_once(f"https://127.0.0.1:{server.port}/ok", PROD))
    assert isinstance(outcome, TransportFailure)
    assert outcome.kind is ErrorKind.BLOCKED_TARGET
    assert "loopback" in outcome.detail
    assert server.requests() == []


def test_dns_rebinding_after_registration_is_blocked_at_send_time() -> None:
    """The name was public at registration; at delivery it points at the metadata service: blocked."""
    answers = {"hooks.example.com": ["93.184.216.34"]}
    lookup = fixed_lookup(answers)
    run(check_target("https://hooks.example.com/hook", PROD, lookup))
    answers["hooks.example.com"] = ["169.254.169.254"]
    outcome = run(send_once("https://hooks.example.com/hook", PROD, lookup=lookup))
    assert isinstance(outcome, TransportFailure)
    assert outcome.kind is ErrorKind.BLOCKED_TARGET
    assert "hooks.example.com resolves to 169.254.169.254 is the cloud metadata address" in outcome.detail


def test_the_connection_goes_to_the_address_that_was_vetted(tls_server: ScriptedServer, ca_file: str) -> None:
    """One lookup per new connection, and the connection uses exactly its vetted answer.

    The resolver answers 127.0.0.1 (allowed here) once, then an internal address: the delivery
    reaches the receiver at the first answer, with the host name kept for Host and TLS.
    """
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[tuple[int, str]]:
        calls.append(host)
        return [(socket.AF_INET, "127.0.0.1" if len(calls) == 1 else "10.0.0.1")]

    settings = EgressSettings(allow_networks=LOCAL, ca_file=ca_file)
    outcome = run(send_once(tls_server.url("/ok", host="hooks.example.test"), settings, lookup=rebinding))
    assert isinstance(outcome, HttpResponse)
    assert outcome.status == 200
    assert calls == ["hooks.example.test"]
    [received] = tls_server.requests("/ok")
    assert received.headers["host"] == f"hooks.example.test:{tls_server.port}"


def test_the_source_address_is_bound(server: ScriptedServer) -> None:
    """Deliveries leave from the configured local address (the spec's fixed "Webhook IPs")."""
    settings = EgressSettings(mode=EgressMode.DEVELOPMENT, source_address="127.0.0.2")
    outcome = run(send_once(server.url("/ok"), settings))
    assert isinstance(outcome, HttpResponse)
    [received] = server.requests("/ok")
    assert received.peer == "127.0.0.2"


def test_plain_http_goes_through_the_proxy(server: ScriptedServer) -> None:
    """With a proxy set, an http:// delivery is sent to the proxy in absolute form."""
    with ForwardProxy.running() as proxy:
        settings = EgressSettings(mode=EgressMode.DEVELOPMENT, proxy=proxy.url)
        outcome = run(send_once(server.url("/ok"), settings))
        seen = proxy.seen
    assert isinstance(outcome, HttpResponse)
    assert outcome.status == 200
    assert [line for line, _ in seen] == [f"POST {server.url('/ok')}"]
    assert len(server.requests("/ok")) == 1


def test_https_through_the_proxy_is_pinned_to_the_vetted_address(
    tls_server: ScriptedServer, ca_file: str
) -> None:
    """Production mode behind a proxy: we resolve and vet, then CONNECT to the vetted IP, not the name,
    so the proxy's own lookup cannot be rebound; TLS still checks the certificate for the name."""
    lookup = fixed_lookup({"hooks.example.test": ["127.0.0.1"]})
    with ForwardProxy.running() as proxy:
        settings = EgressSettings(allow_networks=LOCAL, ca_file=ca_file, proxy=proxy.url)
        outcome = run(send_once(tls_server.url("/ok", host="hooks.example.test"), settings, lookup=lookup))
        seen = proxy.seen
    assert isinstance(outcome, HttpResponse), outcome
    assert outcome.status == 200
    assert [line for line, _ in seen] == [f"CONNECT 127.0.0.1:{tls_server.port}"]
    [received] = tls_server.requests("/ok")
    assert received.headers["host"] == f"hooks.example.test:{tls_server.port}"


def test_a_blocked_target_behind_a_proxy_never_reaches_the_proxy() -> None:
    """The egress check runs before the proxy is asked for anything."""
    lookup = fixed_lookup({"evil.example.com": ["10.1.2.3"]})
    with ForwardProxy.running() as proxy:
        settings = EgressSettings(proxy=proxy.url)
        outcome = run(send_once("https://evil.example.com/hook", settings, lookup=lookup))
        seen = proxy.seen
    assert isinstance(outcome, TransportFailure)
    assert outcome.kind is ErrorKind.BLOCKED_TARGET
    assert seen == []


def test_a_proxy_that_is_down_is_a_classified_failure() -> None:
    """An unreachable proxy gives connection_refused, not an exception."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = EgressSettings(mode=EgressMode.DEVELOPMENT, proxy=f"http://127.0.0.1:{port}")
    outcome = run(send_once("http://127.0.0.1:9/hook", settings))
    assert isinstance(outcome, TransportFailure)
    assert outcome.kind is ErrorKind.CONNECTION_REFUSED


def test_settings_are_checked_when_made() -> None:
    """Egress settings are given in code (the CLI's flags and ATTRIBUTION_WEBHOOKS_EGRESS_*
    variables reach them through the one settings layer, ``app/settings.py``)."""
    settings = EgressSettings(
        mode=EgressMode.DEVELOPMENT,
        proxy="http://proxy.internal:3128",
        source_address="34.120.45.67",
        allow_networks="10.20.0.0/16, fd00:1::/64",  # type: ignore[arg-type]  # as a flag gives it
    )
    assert [str(n) for n in settings.allow_networks] == ["10.20.0.0/16", "fd00:1::/64"]
    assert settings.source_address == "34.120.45.67"
    with pytest.raises(ValidationError, match="source_address"):
        EgressSettings(source_address="not-an-ip")
    with pytest.raises(ValidationError, match="proxy"):
        EgressSettings(proxy="https://proxy.internal:3128")
    with pytest.raises(ValidationError, match="timeout"):
        EgressSettings(timeout=timedelta(0))


def test_the_transport_can_be_shared_by_concurrent_attempts(server: ScriptedServer) -> None:
    """Many attempts at once through one transport all get their own outcome."""

    async def many() -> list[object]:
        async with HttpTransport(EgressSettings(mode=EgressMode.DEVELOPMENT)) as transport:
            requests = [
                OutboundRequest(server.url(path), HEADERS, b"{}", timedelta(seconds=1))
                for path in ["/ok", "/status/500", "/hang", "/reset"] * 5
            ]
            return list(await asyncio.gather(*(transport.send(r) for r in requests)))

    outcomes = run(many())
    kinds = [o.status if isinstance(o, HttpResponse) else o.kind for o in outcomes]  # type: ignore[attr-defined]
    assert kinds == [200, 500, ErrorKind.READ_TIMEOUT, ErrorKind.CONNECTION_RESET] * 5
