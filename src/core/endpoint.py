"""The endpoint aggregate (a webhook subscription): state, decide and evolve. Its commands are in
``endpoint_commands``, the checks of its fields in ``endpoint_fields``; both are re-exported here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from functools import reduce

from attrs import evolve as _replace
from attrs import frozen

from . import flow
from .endpoint_commands import (
    OFF,
    AutoDisable,
    CloseBreaker,
    Delete,
    Disable,
    Enable,
    EndpointCommand,
    OpenBreaker,
    Register,
    RotateSecret,
    Update,
)
from .endpoint_fields import (
    MAX_ROTATION_GRACE,
    EndpointRules,
    validate_description,
    validate_event_types,
    validate_flag,
    validate_secret,
    validate_url,
)
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
    "OFF",
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
                    description=validate_description(command.description),
                    standard_webhooks=command.standard_webhooks,
                    registered_at=command.now,
                    ordered=validate_flag(command.ordered, "ordered"),
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
    description = None if command.description is None else validate_description(command.description)
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
            else validate_flag(command.ordered, "ordered")
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
