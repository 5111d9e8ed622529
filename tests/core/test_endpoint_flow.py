"""The endpoint's flow policies and breaker events, as given / when / then (ADR 0015)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attribution_webhooks.core import endpoint as ep
from attribution_webhooks.core.errors import InvalidTransition, ValidationError
from attribution_webhooks.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    BreakerClosed,
    BreakerOpened,
    EndpointEnabled,
    EndpointRegistered,
    EndpointUpdated,
)
from attribution_webhooks.core.projections import next_failures

NOW = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
RULES = ep.EndpointRules()
LATER = NOW + timedelta(minutes=1)


def registered(**policies: object) -> EndpointRegistered:
    return EndpointRegistered(
        "wh_1",
        "acct_1",
        "https://a.example/h",
        ("deal.attributed",),
        "your_webhook_secret",
        "",
        False,
        NOW,
        **policies,  # type: ignore[arg-type]
    )


def given(*events: object) -> ep.Endpoint:
    return ep.fold(events)  # type: ignore[arg-type]


def test_register_records_the_policies() -> None:
    """Registering with a limit and a breaker records both; without them, both are off."""
    command = ep.Register(
        "wh_1",
        "acct_1",
        "https://a.example/h",
        ["deal.attributed"],
        "your_webhook_secret",
        NOW,
        rate_limit=10,
        rate_limit_burst=2,
        circuit_breaker_threshold=5,
    )
    [event] = ep.decide(command, ep.initial_state(), RULES)
    assert isinstance(event, EndpointRegistered)
    assert (event.rate_limit, event.rate_limit_burst, event.circuit_breaker_threshold) == (10, 2, 5)
    state = ep.evolve(ep.initial_state(), event)
    assert state.rate() is not None
    assert given(registered()).rate() is None


def test_register_rejects_a_limit_out_of_range() -> None:
    """A limit of 0 at registration is not a limit: the field is named in the error."""
    command = ep.Register(
        "wh_1",
        "acct_1",
        "https://a.example/h",
        ["deal.attributed"],
        "your_webhook_secret",
        NOW,
        rate_limit=-3,
    )
    with pytest.raises(ValidationError, match="rateLimit"):
        ep.decide(command, ep.initial_state(), RULES)


def test_update_sets_and_turns_off_policies() -> None:
    """Given a limit, when updated to OFF, then the event records 0 and the state has no limit."""
    state = given(registered(rate_limit=5))
    [event] = ep.decide(ep.Update(LATER, rate_limit=ep.OFF), state, RULES)
    assert event == EndpointUpdated("wh_1", LATER, rate_limit=0)
    assert ep.evolve(state, event).rate_limit is None
    assert ep.decide(ep.Update(LATER, rate_limit=5), state, RULES) == []  # the same value: nothing


def test_turning_the_breaker_off_closes_it() -> None:
    """Given an open breaker, when its threshold is turned off, then it closes in the same append."""
    state = given(registered(circuit_breaker_threshold=2), BreakerOpened("wh_1", 2, NOW))
    events = ep.decide(ep.Update(LATER, circuit_breaker_threshold=ep.OFF), state, RULES)
    assert events[-1] == BreakerClosed("wh_1", LATER)
    assert ep.fold(events, state).circuit_breaker_opened_at is None


def test_breaker_opens_at_its_threshold() -> None:
    """Given a threshold of 3, when 3 failures in a row are reported, then it opens; 2 is an error."""
    state = given(registered(circuit_breaker_threshold=3))
    assert ep.decide(ep.OpenBreaker(3, LATER), state, RULES) == [BreakerOpened("wh_1", 3, LATER)]
    with pytest.raises(InvalidTransition):
        ep.decide(ep.OpenBreaker(2, LATER), state, RULES)
    with pytest.raises(InvalidTransition):
        ep.decide(ep.OpenBreaker(50, LATER), given(registered()), RULES)


def test_opening_and_closing_are_idempotent() -> None:
    """An open breaker opens no more; a closed one closes no more (another worker got there)."""
    opened = given(registered(circuit_breaker_threshold=1), BreakerOpened("wh_1", 1, NOW))
    assert ep.decide(ep.OpenBreaker(4, LATER), opened, RULES) == []
    assert ep.decide(ep.CloseBreaker(LATER), opened, RULES) == [BreakerClosed("wh_1", LATER)]
    assert ep.decide(ep.CloseBreaker(LATER), given(registered()), RULES) == []


def test_enabling_closes_the_breaker() -> None:
    """Enabling is a fresh start: the breaker closes and failures before it no longer count."""
    state = given(registered(circuit_breaker_threshold=1), BreakerOpened("wh_1", 1, NOW))
    assert ep.evolve(state, EndpointEnabled("wh_1", LATER)).circuit_breaker_opened_at is None
    assert next_failures(7, EndpointEnabled("wh_1", LATER)) == 0


def test_failures_count_in_a_row() -> None:
    """A failure adds one; a success resets; other events leave the count."""
    failure = AttemptFailed("dlv_1", "wh_1", 1, NOW, 1.0, 500, None, "HTTP 500", "")
    success = AttemptSucceeded("dlv_1", "wh_1", 2, NOW, 1.0, 200, "")
    assert next_failures(next_failures(0, failure), failure) == 2
    assert next_failures(2, success) == 0
    assert next_failures(2, BreakerOpened("wh_1", 2, NOW)) == 2
