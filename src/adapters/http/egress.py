"""Where deliveries may go: the SSRF guard.

In production mode a delivery goes only to an ``https://`` URL whose host resolves to public
addresses. Not: loopback, private (RFC 1918, ULA), link-local (169.254.0.0/16 with the cloud
metadata address, fe80::/10), shared CGNAT space, multicast, unspecified, reserved or
documentation ranges, nor an IPv6 address that embeds one of those (IPv4-mapped, IPv4-compatible,
NAT64, 6to4, Teredo). A name is checked after resolution, on the very addresses that the
connection then uses (see ``AiohttpTransport``), so a DNS answer that changes between the check
and the connection (DNS rebinding) cannot reach an internal address. Development mode allows
``http://`` and every address, for the README demo and the tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from ...core.errors import ValidationError
from .settings import EgressMode, EgressSettings, Network

__all__ = [
    "BlockedTarget",
    "IPAddress",
    "Lookup",
    "blocked_reason",
    "check_target",
    "check_url",
    "resolve_vetted",
    "system_lookup",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# (family, address) pairs, as getaddrinfo gives them; a name that does not resolve raises socket.gaierror.
Lookup = Callable[[str, int], Awaitable[Sequence[tuple[int, str]]]]

# Ranges that ``is_global`` lets through but that are no place for a webhook.
_ALSO_BLOCKED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "100.64.0.0/10",  # CGNAT shared space (also not global; listed to name it)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # 6to4 relay anycast
        "::/96",  # IPv4-compatible IPv6 (deprecated)
        "64:ff9b:1::/48",  # local-use NAT64
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = ipaddress.ip_address("169.254.169.254")


class BlockedTarget(Exception):
    """The egress policy refuses this destination; ``str()`` says why, for the delivery log."""


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is internal, or None if it is a public unicast address."""
    if ip == _METADATA:
        return "the cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.IPv4Network("100.64.0.0/10"):
        return "a shared (CGNAT) address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.IPv6Network("fc00::/7"):
        return "a unique local (private) address"
    if ip.is_private:
        return "a private or reserved address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global or any(ip in net for net in _ALSO_BLOCKED if net.version == ip.version):
        return "not a public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address
    return None


def blocked_reason(address: str | IPAddress, allow: Sequence[Network] = ()) -> str | None:
    """Why production mode refuses ``address``, or None if a delivery may go there.

    Addresses inside one of the ``allow`` networks are accepted whatever they are.
    """
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    if any(ip in net for net in allow if net.version == ip.version):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            inner_reason = blocked_reason(inner, allow)
            if inner_reason is not None:
                return f"{ip} embeds {inner_reason}"
            if ip.ipv4_mapped is not None:
                return None  # the socket connects to the IPv4 address itself, which is fine
    reason = _kind(ip)
    return f"{ip} is {reason}" if reason is not None else None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_url(url: str, settings: EgressSettings) -> None:
    """What can be told without DNS: the scheme, an IP-literal host, ``localhost`` names.

    Raises ``BlockedTarget``; development mode accepts every http(s) URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedTarget(f"the scheme {parts.scheme!r} is not http(s)")
    if settings.mode is EgressMode.DEVELOPMENT:
        return
    if scheme != "https":
        raise BlockedTarget("only https:// URLs are allowed in production mode")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise BlockedTarget("the URL has no host")
    literal = _literal(host)
    if literal is not None:
        reason = blocked_reason(literal, settings.allow_networks)
        if reason is not None:
            raise BlockedTarget(reason)
    elif host == "localhost" or host.endswith(".localhost"):
        raise BlockedTarget(f"{host} is a loopback name")


async def system_lookup(host: str, port: int) -> Sequence[tuple[int, str]]:
    """The operating system's resolver (getaddrinfo, in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


async def resolve_vetted(
    host: str, port: int, settings: EgressSettings, lookup: Lookup = system_lookup
) -> list[tuple[int, str]]:
    """Resolve ``host`` once and return its addresses if every one of them may be reached.

    In production mode one internal address among the answers blocks the whole name: picking
    the public ones would still let an attacker who controls the zone aim at both. A lookup that
    fails or takes longer than ``dns_timeout`` raises ``socket.gaierror``.
    """
    literal = _literal(host)
    if literal is not None:
        answers: Sequence[tuple[int, str]] = [
            (socket.AF_INET6 if literal.version == 6 else socket.AF_INET, str(literal))
        ]
    else:
        try:
            async with asyncio.timeout(settings.dns_timeout.total_seconds()):
                answers = await lookup(host, port)
        except TimeoutError:
            raise socket.gaierror(
                socket.EAI_AGAIN, f"no DNS answer for {host} within the time limit"
            ) from None
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
    if settings.mode is EgressMode.PRODUCTION:
        for _, address in answers:
            reason = blocked_reason(address, settings.allow_networks)
            if reason is not None:
                raise BlockedTarget(f"{host} resolves to {reason}" if literal is None else reason)
    return list(dict.fromkeys(answers))


async def check_target(url: str, settings: EgressSettings, lookup: Lookup = system_lookup) -> None:
    """The check for registration and URL updates: raises ``ValidationError`` on the ``url`` field.

    The URL's shape is checked and its host resolved; a name that does not resolve (yet) is
    accepted, since every delivery checks again when it connects.
    """
    try:
        check_url(url, settings)
        parts = urlsplit(url)
        if settings.mode is EgressMode.PRODUCTION and parts.hostname:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            try:
                await resolve_vetted(parts.hostname, port, settings, lookup)
            except OSError:
                return
    except BlockedTarget as blocked:
        raise ValidationError("url", f"deliveries cannot go there: {blocked}") from None
    except ValueError as error:
        raise ValidationError("url", f"not a valid URL ({error})") from None
