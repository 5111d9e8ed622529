"""What operators can set about outbound HTTP: safety mode, pool, timeouts, proxy, source address."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from enum import StrEnum

from attrs import field, frozen

from ...core.errors import ValidationError

__all__ = ["EgressMode", "EgressSettings", "HttpClient", "Network"]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressMode(StrEnum):
    """``production`` sends only to public HTTPS targets; ``development`` allows http:// and loopback."""

    PRODUCTION = "production"
    DEVELOPMENT = "development"


class HttpClient(StrEnum):
    """The HTTP client under the port: libcurl through pycurl (the default), or httpx's
    ``AsyncClient`` on its own transport (ADR 0005, third addendum)."""

    CURL = "curl"
    HTTPX = "httpx"


def _client(value: object) -> HttpClient:
    try:
        return HttpClient(str(value).lower())
    except ValueError:
        raise ValidationError("client", "use curl or httpx") from None


def _networks(value: object) -> tuple[Network, ...]:
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    if not isinstance(value, list | tuple):
        raise ValidationError("allow_networks", "give a list of CIDR networks such as 10.20.0.0/16")
    try:
        return tuple(
            item
            if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network)
            # strict=False: "10.20.1.5/16" means the network around it, not an error
            else ipaddress.ip_network(str(item), strict=False)
            for item in value
        )
    except ValueError as error:
        raise ValidationError("allow_networks", str(error)) from None


@frozen
class EgressSettings:
    """Outbound HTTP settings.

    ``timeout`` bounds a request that carries none of its own (the dispatcher always sets one);
    ``connect_timeout`` is the part of it that connecting (DNS, TCP and TLS) may take.
    ``log_body_limit`` bytes of each response are kept for the delivery log; a response body is
    drained up to ``read_body_limit`` bytes so the connection can be reused, and beyond that the
    connection is closed instead of read. ``proxy`` is an ``http://`` proxy URL;
    ``source_address`` the local IP to send from (the spec's "Webhook IPs").
    ``allow_networks`` lists internal networks that production mode may reach nonetheless
    (say, a partner's on-premises range behind a VPN); it is empty by default.
    ``ca_file`` replaces the certifi bundle for verifying receivers' certificates.
    ``client`` picks the HTTP client under the port (libcurl unless set to httpx).
    """

    mode: EgressMode = EgressMode.PRODUCTION
    timeout: timedelta = timedelta(seconds=15)
    connect_timeout: timedelta = timedelta(seconds=10)
    dns_timeout: timedelta = timedelta(seconds=5)
    max_connections: int = 256
    max_connections_per_host: int = 0  # 0: no limit beyond max_connections
    keepalive_expiry: timedelta = timedelta(seconds=30)
    log_body_limit: int = 4096
    read_body_limit: int = 64 * 1024
    user_agent: str = "attribution-webhooks/0.1 (+https://github.com/attribution/webhooks)"
    proxy: str | None = None
    source_address: str | None = None
    allow_networks: tuple[Network, ...] = field(default=(), converter=_networks)
    ca_file: str | None = None
    client: HttpClient = field(default=HttpClient.CURL, converter=_client)

    def __attrs_post_init__(self) -> None:
        if self.timeout <= timedelta(0) or self.connect_timeout <= timedelta(0):
            raise ValidationError("timeout", "timeouts must be positive")
        if self.max_connections < 1 or self.max_connections_per_host < 0:
            raise ValidationError("max_connections", "must be positive (per host: 0 means no limit)")
        if not 0 <= self.log_body_limit <= self.read_body_limit:
            raise ValidationError("log_body_limit", "must be between 0 and read_body_limit")
        if self.source_address is not None:
            try:
                ipaddress.ip_address(self.source_address)
            except ValueError:
                raise ValidationError(
                    "source_address", f"{self.source_address!r} is not an IP address"
                ) from None
        if self.proxy is not None and not self.proxy.startswith("http://"):
            raise ValidationError("proxy", "give the proxy as http://host:port (HTTPS goes through CONNECT)")
