"""One reading of a webhook URL, shared by the egress check and every HTTP client (issue 10.3).

Python's ``urlsplit``, libcurl and httpx each read a URL's host their own way: ``127。0。0。1``
(ideographic full stops), fullwidth digits, ``0x7f000001``, ``2130706433``, ``127.1`` and
``0177.0.0.1`` are a name to one of them and loopback to another. So a URL is read once, here,
the way the WHATWG URL standard reads a special (http/https) URL's host: IDNA/UTS #46 mapping
for non-ASCII names (which turns those full stops and digits into ASCII), then the "ends in a
number" rule that reads the last label as IPv4 in any of its historic spellings (hex, octal,
fewer than four parts). What comes out is a canonical ASCII host that the check vets and the
clients are given; spellings that parsers disagree about and no webhook needs (percent-escapes
or backslashes in the authority, several ``@``, IPv6 zone ids, empty labels) are refused.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

import idna
from attrs import frozen

__all__ = ["IPAddress", "InvalidTarget", "Target", "parse_target"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAME = re.compile(r"[a-z0-9_-]{1,63}")
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)")
# What may stay as it is in a path and query (``%`` included: escapes already there are kept).
_PATH_SAFE = "/?:@!$&'()*+,;=%~[]"


class InvalidTarget(ValueError):
    """The URL cannot be read one way only (or not at all); ``str()`` says why."""


@frozen
class Target:
    """A URL as every part of the HTTP adapter reads it.

    ``host`` is canonical: a lower-case ASCII name without a trailing dot, or an IP address's
    standard text (IPv6 without brackets), then ``ip`` is that address. ``url`` is the URL
    rebuilt around it (ASCII only, no fragment): what a client is given.
    """

    scheme: str
    host: str
    port: int
    ip: IPAddress | None
    url: str

    @property
    def authority(self) -> str:
        """``host[:port]`` as the Host header carries it (the port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _ipv4_number(part: str) -> int:
    if not _NUMBER.fullmatch(part):
        raise InvalidTarget(f"{part!r} is not a number in an IPv4 address")
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        if any(c in "89" for c in part):
            raise InvalidTarget(f"{part!r} is not an octal number")
        return int(part, 8)
    return int(part)


def _ipv4(host: str) -> ipaddress.IPv4Address:
    """The WHATWG IPv4 parser: 1 to 4 parts, each decimal, 0x-hex or 0-octal; the last part
    fills the remaining bytes (``127.1`` is 127.0.0.1, ``2130706433`` too)."""
    parts = host.split(".")
    if len(parts) > 4:
        raise InvalidTarget(f"{host!r} has too many parts for an IPv4 address")
    numbers = [_ipv4_number(part) for part in parts]
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise InvalidTarget(f"{host!r} is out of range for an IPv4 address")
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _host(raw: str) -> tuple[str, IPAddress | None]:
    if raw.startswith("["):
        if not raw.endswith("]") or "%" in raw:
            raise InvalidTarget("an IPv6 host must be [address], without a zone id")
        try:
            ip6 = ipaddress.IPv6Address(raw[1:-1])
        except ValueError:
            raise InvalidTarget(f"{raw!r} is not an IPv6 address") from None
        return str(ip6), ip6
    if not raw.isascii():
        try:
            raw = idna.encode(raw, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as error:
            raise InvalidTarget(f"{raw!r} is not a valid host name ({error})") from None
    host = raw.lower()
    if host.endswith("."):
        host = host[:-1]  # the root label: same name
    labels = host.split(".")
    if _NUMBER.fullmatch(labels[-1]):
        ip4 = _ipv4(host)
        return str(ip4), ip4
    if len(host) > 253 or not all(_NAME.fullmatch(label) for label in labels):
        raise InvalidTarget(f"{raw!r} is not a valid host name")
    return host, None


def parse_target(url: str) -> Target:
    """Read ``url`` as an http(s) URL with one unambiguous host; raises ``InvalidTarget``."""
    if any(ord(c) <= 0x20 or c == "\x7f" for c in url):
        raise InvalidTarget("the URL holds a space or a control character")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise InvalidTarget(f"not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidTarget(f"the scheme {parts.scheme!r} is not http(s)")
    if not url[len(parts.scheme) :].startswith("://"):
        raise InvalidTarget("the URL must start with http:// or https://")
    authority = parts.netloc
    if "\\" in authority or "%" in authority or authority.count("@") > 1:
        raise InvalidTarget("the URL's host part holds an escape, a backslash or several @")
    userinfo, _, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        raw, _, rest = hostport.partition("]")
        raw += "]"
        if rest and not rest.startswith(":"):
            raise InvalidTarget("unexpected text after the IPv6 address")
        port_text = rest[1:]
    else:
        raw, _, port_text = hostport.partition(":")
        if ":" in port_text:
            raise InvalidTarget("the host holds a colon")
    if not raw:
        raise InvalidTarget("the URL has no host")
    if port_text and not (port_text.isascii() and port_text.isdigit() and int(port_text) <= 65535):
        raise InvalidTarget(f"{port_text!r} is not a port number")
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    host, ip = _host(raw)
    netloc = f"[{host}]" if ":" in host else host
    if port_text:
        netloc += f":{port}"
    if userinfo:
        netloc = f"{quote(userinfo, safe=':%!$&()*+,;=~')}@{netloc}"
    rest = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        rest += "?" + quote(parts.query, safe=_PATH_SAFE)
    return Target(scheme, host, port, ip, f"{scheme}://{netloc}{rest}")
