"""The endpoint aggregate (a webhook subscription): commands, state, decide and evolve."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from functools import reduce
from urllib.parse import urlsplit

from attrs import evolve as _replace
from attrs import frozen

from . import flow
from .catalog import check_subscribable_type
from .errors import InvalidTransition, ValidationError
from .events import (
    BreakerClosed,
    BreakerOpened,
    DisableReason,
    EndpointDeleted,
    EndpointDisabled,
    EndpointEnabled,
    EndpointEvent,
    EndpointRegistered,
    EndpointUpdated,
    SecretRotated,
)

__all__ = [
    "AutoDisable",
    "CloseBreaker",
    "Delete",
    "Disable",
    "Enable",
    "Endpoint",
    "EndpointCommand",
    "OpenBreaker",
    "EndpointRules",
    "EndpointStatus",
    "Register",
    "RotateSecret",
    "Update",
    "decide",
    "evolve",
    "failing_too_long",
    "fold",
    "initial_state",
    "validate_event_types",
    "validate_secret",
    "validate_url",
]

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 512
MAX_SECRET_LENGTH = 256
MAX_ROTATION_GRACE = timedelta(days=7)


@frozen
class EndpointRules:
    """The service's settings that endpoint commands are checked against."""

    require_https: bool = True
    min_secret_length: int = 16
    min_distinct_secret_chars: int = 8
    auto_disable_after: timedelta = timedelta(days=3)


class EndpointStatus(StrEnum):
    NEW = "new"
    ENABLED = "enabled"
    DISABLED = "disabled"
    DELETED = "deleted"


@frozen
class Endpoint:
    """An endpoint's state, folded from its events."""

    status: EndpointStatus = EndpointStatus.NEW
    endpoint_id: str = ""
    account_id: str = ""
    url: str = ""
    event_types: tuple[str, ...] = ()
    description: str = ""
    secret: str = ""
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    standard_webhooks: bool = False
    disabled_reason: DisableReason | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: Its deliveries go one at a time in publish order (ADR 0016).
    ordered: bool = False
    #: Flow policies (ADR 0015): deliveries per second (None: no limit), extra ones at once,
    #: and the consecutive failed attempts that open the circuit breaker (None: no breaker).
    rate_limit: int | None = None
    rate_limit_burst: int = 0
    circuit_breaker_threshold: int | None = None
    #: Open since then (None: closed), after that many consecutive failed attempts.
    circuit_breaker_opened_at: datetime | None = None
    circuit_breaker_failures: int = 0

    def rate(self) -> flow.RateLimit | None:
        """The endpoint's rate limit, if it has one."""
        return None if self.rate_limit is None else flow.RateLimit(self.rate_limit, self.rate_limit_burst)

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets that sign a request sent at ``now``: the current one first."""
        expires = self.previous_secret_expires_at
        # An empty previous secret is one a store has already shredded: it never signs.
        if self.previous_secret and expires is not None and now < expires:
            return (self.secret, self.previous_secret)
        return (self.secret,)


# --- commands ----------------------------------------------------------------------------------


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


# --- validation ---------------------------------------------------------------------------------


def validate_url(url: object, require_https: bool, field: str = "url") -> str:
    """Check the shape of a webhook URL. Whether its host is reachable and public is the transport's check."""
    if not isinstance(url, str) or not url:
        raise ValidationError(field, "give the endpoint's URL as a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(field, f"longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValidationError(field, "contains white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValidationError(field, f"not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationError(field, f"must be an http(s) URL, got scheme {parts.scheme!r}")
    if require_https and scheme != "https":
        raise ValidationError(field, "must use https:// (plain http:// is allowed only in development mode)")
    if not parts.hostname:
        raise ValidationError(field, "has no host name")
    if "@" in parts.netloc:
        # A password in a URL is shown wherever the URL is (lists, logs, the dashboard): it would
        # be a secret in plain sight. Receivers authenticate requests by the signature instead.
        raise ValidationError(
            field,
            "must not contain a user name or password (user:pass@host): "
            "verify the X-Attribution-Signature header instead",
        )
    if port == 0:
        raise ValidationError(field, "port 0 is not a valid destination")
    if parts.fragment or url.endswith("#"):
        raise ValidationError(field, "must not contain a #fragment, which is never sent")
    return url


def validate_event_types(event_types: object, field: str = "events") -> tuple[str, ...]:
    """A non-empty list of known event types (operational ones included), duplicates removed,
    order kept."""
    if isinstance(event_types, str) or not isinstance(event_types, Iterable):
        raise ValidationError(field, 'give a list of event types, e.g. ["deal.attributed"]')
    checked: dict[str, None] = {}
    for index, event_type in enumerate(event_types):
        checked[check_subscribable_type(event_type, f"{field}[{index}]").value] = None
    if not checked:
        raise ValidationError(field, "subscribe to at least one event type")
    return tuple(checked)


def validate_secret(secret: object, rules: EndpointRules, field: str = "secret") -> str:
    """A signing secret: printable ASCII without spaces, long and varied enough to resist guessing."""
    if not isinstance(secret, str):
        raise ValidationError(field, "must be a string")
    if not rules.min_secret_length <= len(secret) <= MAX_SECRET_LENGTH:
        raise ValidationError(
            field,
            f"must be {rules.min_secret_length} to {MAX_SECRET_LENGTH} characters long, got {len(secret)}",
        )
    if not all(0x21 <= ord(ch) <= 0x7E for ch in secret):
        raise ValidationError(field, "use printable ASCII characters without spaces")
    if len(set(secret)) < rules.min_distinct_secret_chars:
        raise ValidationError(
            field, f"too easy to guess: use at least {rules.min_distinct_secret_chars} different characters"
        )
    return secret


def _validate_description(description: object) -> str:
    if not isinstance(description, str):
        raise ValidationError("description", "must be a string")
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise ValidationError("description", f"longer than {MAX_DESCRIPTION_LENGTH} characters")
    return description


def _validate_flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, "must be true or false")
    return value


# --- decide / evolve ------------------------------------------------------------------------------


def initial_state() -> Endpoint:
    return Endpoint()


def _require_live(state: Endpoint) -> None:
    if state.status is EndpointStatus.NEW:
        raise InvalidTransition("the endpoint does not exist")
    if state.status is EndpointStatus.DELETED:
        raise InvalidTransition("the endpoint has been deleted")


def decide(command: EndpointCommand, state: Endpoint, rules: EndpointRules) -> list[EndpointEvent]:
    """The events that ``command`` causes in ``state``; raises a DomainError if it is not allowed."""
    match command:
        case Register():
            if state.status is not EndpointStatus.NEW:
                raise InvalidTransition(f"endpoint {command.endpoint_id} already exists")
            return [
                EndpointRegistered(
                    endpoint_id=command.endpoint_id,
                    account_id=command.account_id,
                    url=validate_url(command.url, rules.require_https),
                    event_types=validate_event_types(command.event_types),
                    secret=validate_secret(command.secret, rules),
                    description=_validate_description(command.description),
                    standard_webhooks=command.standard_webhooks,
                    registered_at=command.now,
                    ordered=_validate_flag(command.ordered, "ordered"),
                    rate_limit=flow.validate_rate_limit(command.rate_limit),
                    rate_limit_burst=flow.validate_burst(command.rate_limit_burst),
                    circuit_breaker_threshold=flow.validate_breaker_threshold(
                        command.circuit_breaker_threshold
                    ),
                )
            ]
        case Update():
            _require_live(state)
            return _decide_update(command, state, rules)
        case RotateSecret():
            _require_live(state)
            if not timedelta(0) <= command.grace <= MAX_ROTATION_GRACE:
                most = int(MAX_ROTATION_GRACE.total_seconds())
                raise ValidationError(
                    "gracePeriodSeconds", f"must be from 0 to {most} ({MAX_ROTATION_GRACE.days} days)"
                )
            return [
                SecretRotated(
                    endpoint_id=state.endpoint_id,
                    secret=validate_secret(command.secret, rules),
                    previous_expires_at=command.now + command.grace,
                    rotated_at=command.now,
                )
            ]
        case Disable():
            _require_live(state)
            if state.status is EndpointStatus.DISABLED:
                return []  # idempotent
            return [EndpointDisabled(state.endpoint_id, DisableReason.MANUAL, command.now)]
        case AutoDisable():
            _require_live(state)
            if state.status is EndpointStatus.DISABLED:
                return []
            if not failing_too_long(command.failing_since, command.now, rules):
                raise InvalidTransition(
                    f"failing for {command.now - command.failing_since}, "
                    f"less than the {rules.auto_disable_after} that disables it"
                )
            return [
                EndpointDisabled(state.endpoint_id, DisableReason.FAILING, command.now, command.failing_since)
            ]
        case Enable():
            _require_live(state)
            if state.status is EndpointStatus.ENABLED:
                return []  # idempotent
            return [EndpointEnabled(state.endpoint_id, command.now)]
        case Delete():
            _require_live(state)
            return [EndpointDeleted(state.endpoint_id, command.now)]
        case OpenBreaker():
            _require_live(state)
            if state.circuit_breaker_opened_at is not None:
                return []  # another worker opened it
            if not flow.breaker_should_open(state.circuit_breaker_threshold, False, command.failures):
                raise InvalidTransition(
                    f"{command.failures} failures in a row do not open a breaker "
                    f"with threshold {state.circuit_breaker_threshold}"
                )
            return [BreakerOpened(state.endpoint_id, command.failures, command.now)]
        case CloseBreaker():
            _require_live(state)
            if state.circuit_breaker_opened_at is None:
                return []
            return [BreakerClosed(state.endpoint_id, command.now)]
    raise TypeError(f"not an endpoint command: {command!r}")


def _decide_update(command: Update, state: Endpoint, rules: EndpointRules) -> list[EndpointEvent]:
    policies = (command.rate_limit, command.rate_limit_burst, command.circuit_breaker_threshold)
    if (
        command.url is None
        and command.event_types is None
        and command.description is None
        and command.standard_webhooks is None
        and command.ordered is None
        and all(value is None for value in policies)
    ):
        raise ValidationError(
            "", "nothing to update: give at least one of url, events, description, ordered or a policy"
        )
    rate_limit = _policy(command.rate_limit, flow.validate_rate_limit, state.rate_limit)
    burst = None if command.rate_limit_burst is None else flow.validate_burst(command.rate_limit_burst)
    threshold = _policy(
        command.circuit_breaker_threshold, flow.validate_breaker_threshold, state.circuit_breaker_threshold
    )
    url = None if command.url is None else validate_url(command.url, rules.require_https)
    event_types = None if command.event_types is None else validate_event_types(command.event_types)
    description = None if command.description is None else _validate_description(command.description)
    changed = EndpointUpdated(
        endpoint_id=state.endpoint_id,
        updated_at=command.now,
        url=url if url != state.url else None,
        event_types=event_types if event_types != state.event_types else None,
        description=description if description != state.description else None,
        standard_webhooks=(
            command.standard_webhooks if command.standard_webhooks != state.standard_webhooks else None
        ),
        ordered=(
            None
            if command.ordered is None or command.ordered == state.ordered
            else _validate_flag(command.ordered, "ordered")
        ),
        rate_limit=rate_limit,
        rate_limit_burst=burst if burst != state.rate_limit_burst else None,
        circuit_breaker_threshold=threshold,
    )
    if changed == EndpointUpdated(endpoint_id=state.endpoint_id, updated_at=command.now):
        return []  # the same values again: idempotent
    if threshold == OFF and state.circuit_breaker_opened_at is not None:
        return [changed, BreakerClosed(state.endpoint_id, command.now)]  # no breaker, nothing waits
    return [changed]


def _policy(value: int | None, validate: Callable[[object], int | None], current: int | None) -> int | None:
    """An update's value of a policy as the event records it: None unchanged, OFF turned off."""
    if value is None:
        return None
    checked = None if value == OFF else validate(value)
    if checked == current:
        return None
    return OFF if checked is None else checked


def _set(current: int | None, recorded: int | None) -> int | None:
    if recorded is None:
        return current
    return None if recorded == OFF else recorded


def evolve(state: Endpoint, event: EndpointEvent) -> Endpoint:
    """The state after ``event``."""
    match event:
        case EndpointRegistered():
            return Endpoint(
                status=EndpointStatus.ENABLED,
                endpoint_id=event.endpoint_id,
                account_id=event.account_id,
                url=event.url,
                event_types=event.event_types,
                description=event.description,
                secret=event.secret,
                standard_webhooks=event.standard_webhooks,
                created_at=event.registered_at,
                updated_at=event.registered_at,
                ordered=event.ordered,
                rate_limit=event.rate_limit,
                rate_limit_burst=event.rate_limit_burst,
                circuit_breaker_threshold=event.circuit_breaker_threshold,
            )
        case EndpointUpdated():
            return _replace(
                state,
                url=state.url if event.url is None else event.url,
                event_types=state.event_types if event.event_types is None else event.event_types,
                description=state.description if event.description is None else event.description,
                standard_webhooks=(
                    state.standard_webhooks if event.standard_webhooks is None else event.standard_webhooks
                ),
                ordered=state.ordered if event.ordered is None else event.ordered,
                updated_at=event.updated_at,
                rate_limit=_set(state.rate_limit, event.rate_limit),
                rate_limit_burst=(
                    state.rate_limit_burst if event.rate_limit_burst is None else event.rate_limit_burst
                ),
                circuit_breaker_threshold=_set(
                    state.circuit_breaker_threshold, event.circuit_breaker_threshold
                ),
            )
        case SecretRotated():
            keep_previous = event.previous_expires_at > event.rotated_at
            return _replace(
                state,
                secret=event.secret,
                previous_secret=state.secret if keep_previous else None,
                previous_secret_expires_at=event.previous_expires_at if keep_previous else None,
                updated_at=event.rotated_at,
            )
        case EndpointDisabled():
            return _replace(
                state,
                status=EndpointStatus.DISABLED,
                disabled_reason=event.reason,
                updated_at=event.disabled_at,
            )
        case EndpointEnabled():
            # A fresh start, as for auto-disabling (``projections.next_failing_since``): the
            # breaker closes and the failures before it no longer count.
            return _replace(
                state,
                status=EndpointStatus.ENABLED,
                disabled_reason=None,
                updated_at=event.enabled_at,
                circuit_breaker_opened_at=None,
                circuit_breaker_failures=0,
            )
        case EndpointDeleted():
            # A deleted endpoint never signs again: it keeps no secret (stores destroy the keys
            # that sealed them, ADR 0010).
            return _replace(
                state,
                status=EndpointStatus.DELETED,
                secret="",
                previous_secret=None,
                previous_secret_expires_at=None,
                updated_at=event.deleted_at,
            )
        case BreakerOpened():
            return _replace(
                state, circuit_breaker_opened_at=event.opened_at, circuit_breaker_failures=event.failures
            )
        case BreakerClosed():
            return _replace(state, circuit_breaker_opened_at=None, circuit_breaker_failures=0)
    raise TypeError(f"not an endpoint event: {event!r}")


def fold(events: Iterable[EndpointEvent], state: Endpoint | None = None) -> Endpoint:
    """Replay ``events`` onto ``state`` (the initial state by default)."""
    return reduce(evolve, events, state if state is not None else initial_state())


def failing_too_long(failing_since: datetime | None, now: datetime, rules: EndpointRules) -> bool:
    """The auto-disable rule, in its one home: every delivery to the endpoint has failed since
    ``failing_since``, for at least ``rules.auto_disable_after``."""
    return failing_since is not None and now - failing_since >= rules.auto_disable_after
