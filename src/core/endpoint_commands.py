"""The endpoint aggregate's commands (``endpoint.decide`` takes them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from attrs import frozen

__all__ = [
    "OFF",
    "AutoDisable",
    "CloseBreaker",
    "Delete",
    "Disable",
    "Enable",
    "EndpointCommand",
    "OpenBreaker",
    "Register",
    "RotateSecret",
    "Update",
]


@frozen
class Register:
    endpoint_id: str
    account_id: str
    url: str
    event_types: Sequence[str]
    secret: str
    now: datetime
    description: str = ""
    standard_webhooks: bool = False
    ordered: bool = False
    rate_limit: int | None = None
    rate_limit_burst: int = 0
    circuit_breaker_threshold: int | None = None


#: In an ``Update``: turn the rate limit or the breaker off (None leaves a field as it is).
OFF = 0


@frozen
class Update:
    """Change any of the given fields; None leaves a field as it is, ``OFF`` turns a policy off."""

    now: datetime
    url: str | None = None
    event_types: Sequence[str] | None = None
    description: str | None = None
    standard_webhooks: bool | None = None
    ordered: bool | None = None
    rate_limit: int | None = None
    rate_limit_burst: int | None = None
    circuit_breaker_threshold: int | None = None


@frozen
class OpenBreaker:
    """``failures`` attempts in a row have failed (the read model's count)."""

    failures: int
    now: datetime


@frozen
class CloseBreaker:
    """An attempt succeeded while the breaker was open."""

    now: datetime


@frozen
class RotateSecret:
    secret: str
    grace: timedelta
    now: datetime


@frozen
class Disable:
    now: datetime


@frozen
class AutoDisable:
    """Disable because every delivery has failed since ``failing_since``."""

    failing_since: datetime
    now: datetime


@frozen
class Enable:
    now: datetime


@frozen
class Delete:
    now: datetime


EndpointCommand = (
    Register | Update | RotateSecret | Disable | AutoDisable | Enable | Delete | OpenBreaker | CloseBreaker
)
