"""One reading of a URL's host (issue 10.3): every spelling that some parser takes for an IP
address is read as that address here, and spellings parsers disagree about are refused."""

# ruff: noqa: RUF001  # fullwidth digits and full stops are the hostile spellings under test
from __future__ import annotations

import pytest

from attribution_webhooks.adapters.http import HttpClient, InvalidTarget, parse_target


@pytest.fixture(autouse=True)
def client() -> HttpClient:
    """Pure parsing: no client involved, so these run once rather than once per client."""
    return HttpClient.CURL


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("127。0。0。1", "127.0.0.1"),  # ideographic full stops
        ("127．0．0．1", "127.0.0.1"),  # fullwidth full stops
        ("１２７.０.０.１", "127.0.0.1"),  # fullwidth digits
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("10.1", "10.0.0.1"),
        ("[::1]", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1"),
        ("Hooks.Example.COM", "hooks.example.com"),
        ("hooks.example.com.", "hooks.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("ｈｏｏｋｓ.example", "hooks.example"),
        ("ⓛocalhost", "localhost"),
    ],
)
def test_every_spelling_reads_as_one_host(host: str, canonical: str) -> None:
    """Numeric, Unicode and trailing-dot spellings come out as the host every client is given."""
    target = parse_target(f"https://{host}:8443/hook?x=1")
    assert target.host == canonical
    assert (target.ip is not None) is (canonical[0].isdigit() or ":" in canonical)
    bracketed = f"[{canonical}]" if ":" in canonical else canonical
    assert target.url == f"https://{bracketed}:8443/hook?x=1"
    assert target.url.isascii()


@pytest.mark.parametrize(
    "url",
    [
        "https://127%2e0%2e0%2e1/",
        "https://evil.example\\@127.0.0.1/",
        "https://a@b@127.0.0.1/",
        "https://[fe80::1%25eth0]/",
        "https://[::1/",
        "https://256.0.0.1/",
        "https://1.2.3.4.5/",
        "https://0x1g.0.0.1/",
        "https://089.0.0.1/",
        "https://example.123/",
        "https://a..b.example/",
        "https://exa mple.com/",
        "https://example.com\t/",
        "https://ex<ample.com/",
        "https://:443/",
        "https://example.com:99999/",
        "https://example.com:8a/",
        "https:example.com/",
        "ftp://example.com/",
    ],
)
def test_ambiguous_or_invalid_urls_are_refused(url: str) -> None:
    """Escapes, backslashes, several @, zone ids, out-of-range numbers, bad labels and ports."""
    with pytest.raises(InvalidTarget):
        parse_target(url)


def test_the_host_header_value_keeps_a_non_default_port() -> None:
    """The Host header names the canonical host, and the port only when it is not the default."""
    assert parse_target("https://Hooks.Example.com/x").authority == "hooks.example.com"
    assert parse_target("https://hooks.example.com:8443/x").authority == "hooks.example.com:8443"
    assert parse_target("http://[::1]:80/x").authority == "[::1]"
    assert parse_target("https://bücher.example/ü?q=ü").url == (
        "https://xn--bcher-kva.example/%C3%BC?q=%C3%BC"
    )
