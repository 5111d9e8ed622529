"""Real HTTP delivery: the ``Transport`` port over httpx (with aiohttp underneath), the
classification of failures, and the egress policy that keeps deliveries off internal networks."""

from .aiohttp_transport import AiohttpTransport
from .classify import classify, parse_retry_after
from .egress import BlockedTarget, Lookup, blocked_reason, check_target, check_url, system_lookup
from .settings import EgressMode, EgressSettings
from .transport import HttpTransport

__all__ = [
    "HttpTransport",
    "AiohttpTransport",
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
