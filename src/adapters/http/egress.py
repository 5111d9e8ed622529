"""Where deliveries may go: the SSRF guard.

In production mode a delivery goes only to an ``https://`` URL whose host resolves to public
addresses. Not: loopback, private (RFC 1918, ULA), link-local (169.254.0.0/16 with the cloud
metadata address, fe80::/10), shared CGNAT space, multicast, unspecified, reserved or
documentation ranges, nor an IPv6 address that embeds one of those (IPv4-mapped, IPv4-compatible,
NAT64, 6to4, Teredo). The URL is read once (``hosts.parse_target``), so the host vetted is the
host every client sends to, whatever its spelling. A name is checked after resolution, and the
clients connect only to the address vetted here (``VettedAddresses``), so a DNS answer that
changes between the check and the connection (DNS rebinding) cannot reach an internal address.
Registration (``check_target``) and every delivery run this same code. Development mode allows
``http://`` and every address, for the README demo and the tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

from ...core.errors import ValidationError
from .hosts import InvalidTarget, IPAddress, Target, parse_target
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
    "VettedAddresses",
]

# How long a vetted DNS answer is used for new connections (aiohttp's default DNS cache: 10 s).
_VETTED_TTL = 10.0
_CACHE_LIMIT = 10_000

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


def check_url(url: str, settings: EgressSettings) -> Target:
    """What can be told without DNS: the URL read once (``parse_target``), its scheme, an
    IP-literal host in any spelling, ``localhost`` names. Returns the ``Target`` to send to.

    Raises ``BlockedTarget``; development mode accepts every unambiguous http(s) URL.
    """
    try:
        target = parse_target(url)
    except InvalidTarget as error:
        raise BlockedTarget(str(error)) from None
    if settings.mode is EgressMode.DEVELOPMENT:
        return target
    if target.scheme != "https":
        raise BlockedTarget("only https:// URLs are allowed in production mode")
    if target.ip is not None:
        reason = blocked_reason(target.ip, settings.allow_networks)
        if reason is not None:
            raise BlockedTarget(reason)
    elif target.host == "localhost" or target.host.endswith(".localhost"):
        raise BlockedTarget(f"{target.host} is a loopback name")
    return target


async def system_lookup(host: str, port: int) -> Sequence[tuple[int, str]]:
    """The operating system's resolver (getaddrinfo, in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


async def resolve_vetted(
    target: Target, settings: EgressSettings, lookup: Lookup = system_lookup
) -> list[tuple[int, str]]:
    """Resolve ``target``'s host once and return its addresses if every one of them may be reached.

    An IP-literal host is its own answer. In production mode one internal address among the
    answers blocks the whole name: picking the public ones would still let an attacker who
    controls the zone aim at both. An answer that is not an IP address is refused too. A lookup
    that fails or takes longer than ``dns_timeout`` raises ``socket.gaierror``.
    """
    if target.ip is not None:
        family = int(socket.AF_INET6 if target.ip.version == 6 else socket.AF_INET)
        answers: Sequence[tuple[int, str]] = [(family, str(target.ip))]
    else:
        try:
            async with asyncio.timeout(settings.dns_timeout.total_seconds()):
                answers = await lookup(target.host, target.port)
        except TimeoutError:
            raise socket.gaierror(
                socket.EAI_AGAIN, f"no DNS answer for {target.host} within the time limit"
            ) from None
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, f"{target.host} has no address")
    vetted: list[tuple[int, str]] = []
    for family, address in answers:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            raise BlockedTarget(f"{target.host} resolves to {address!r}, not an IP address") from None
        if settings.mode is EgressMode.PRODUCTION:
            reason = blocked_reason(ip, settings.allow_networks)
            if reason is not None:
                raise BlockedTarget(
                    reason if target.ip is not None else f"{target.host} resolves to {reason}"
                )
        vetted.append((family, str(ip)))
    return list(dict.fromkeys(vetted))


async def check_target(url: str, settings: EgressSettings, lookup: Lookup = system_lookup) -> None:
    """The check for registration and URL updates: raises ``ValidationError`` on the ``url`` field.

    The same code as every delivery's check (``check_url`` then ``resolve_vetted``); a name that
    does not resolve (yet) is accepted, since every delivery checks again when it connects.
    """
    try:
        target = check_url(url, settings)
        if settings.mode is EgressMode.PRODUCTION:
            try:
                await resolve_vetted(target, settings, lookup)
            except OSError:
                return
    except BlockedTarget as blocked:
        raise ValidationError("url", f"deliveries cannot go there: {blocked}") from None


class VettedAddresses:
    """The address each host is sent to, vetted, kept ``ttl`` seconds; one lookup per host at a
    time, so concurrent first deliveries to a host share it. Every client connects only here."""

    def __init__(self, settings: EgressSettings, lookup: Lookup, ttl: float = _VETTED_TTL) -> None:
        self._settings = settings
        self._lookup = lookup
        self._ttl = ttl
        self._kept: dict[tuple[str, int], tuple[float, str]] = {}
        self._resolving: dict[tuple[str, int], asyncio.Future[str]] = {}

    def known(self, target: Target) -> str | None:
        """The address kept for ``target``, if it is still fresh: no lookup, no waiting."""
        kept = self._kept.get((target.host, target.port))
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        return None

    async def address(self, target: Target) -> str:
        """The one address to connect to for ``target`` (raises ``BlockedTarget`` or ``gaierror``)."""
        key = (target.host, target.port)
        kept = self._kept.get(key)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        pending = self._resolving.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._resolve(target))
            self._resolving[key] = pending
            pending.add_done_callback(lambda _: self._resolving.pop(key, None))
        return await asyncio.shield(pending)

    def forget(self, target: Target) -> None:
        """After a failed connection: the next attempt looks the name up again."""
        self._kept.pop((target.host, target.port), None)

    async def _resolve(self, target: Target) -> str:
        _, address = (await resolve_vetted(target, self._settings, self._lookup))[0]
        if len(self._kept) > _CACHE_LIMIT:
            self._kept.clear()
        # An IP literal's verdict never changes: kept for good (no task per attempt for it).
        until = time.monotonic() + self._ttl if target.ip is None else float("inf")
        self._kept[target.host, target.port] = (until, address)
        return address
