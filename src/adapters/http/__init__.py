"""Real HTTP delivery: the ``Transport`` port (libcurl underneath by default, httpx's
``AsyncClient`` on any httpx transport as the alternative), the one reading of a URL's host, and
the egress policy that keeps deliveries off internal networks."""

from .curl_transport import CurlTransport
from .egress import (
    BlockedTarget,
    Lookup,
    VettedAddresses,
    blocked_reason,
    check_target,
    check_url,
    resolve_vetted,
    system_lookup,
)
from .exchange import AllowConnect, SendFailed
from .hosts import InvalidTarget, Target, parse_target
from .httpx_transport import HttpxTransport
from .settings import EgressMode, EgressSettings, HttpClient
from .transport import HttpTransport, parse_retry_after

__all__ = [
    "HttpTransport",
    "CurlTransport",
    "HttpxTransport",
    "HttpClient",
    "EgressMode",
    "EgressSettings",
    "AllowConnect",
    "SendFailed",
    "BlockedTarget",
    "Lookup",
    "VettedAddresses",
    "blocked_reason",
    "check_target",
    "check_url",
    "resolve_vetted",
    "system_lookup",
    "InvalidTarget",
    "Target",
    "parse_target",
    "parse_retry_after",
]
