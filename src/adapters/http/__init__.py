"""Real HTTP delivery: the ``Transport`` port (libcurl underneath by default, aiohttp or any
httpx transport as the alternatives), the classification of failures, and the egress policy that
keeps deliveries off internal networks."""

from .aiohttp_transport import AiohttpTransport
from .classify import classify, parse_retry_after
from .curl_transport import CurlTransport
from .egress import BlockedTarget, Lookup, blocked_reason, check_target, check_url, system_lookup
from .settings import EgressMode, EgressSettings, HttpClient
from .transport import HttpTransport

__all__ = [
    "HttpTransport",
    "CurlTransport",
    "AiohttpTransport",
    "HttpClient",
    "EgressMode",
    "EgressSettings",
    "BlockedTarget",
    "Lookup",
    "blocked_reason",
    "check_target",
    "check_url",
    "system_lookup",
    "classify",
    "parse_retry_after",
]
