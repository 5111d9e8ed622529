"""The flow policies in the simulation (ADR 0015): seeds use them, and the checker's flow
invariants can fail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from attrs import evolve

from attribution_webhooks.core.events import (
    AttemptAbandoned,
    BreakerClosed,
    BreakerOpened,
    DeliveryScheduled,
    EndpointRegistered,
)
from attribution_webhooks.core.ports import RecordedEvent
from attribution_webhooks.testing.simulation import SimulationResult, check, simulate

SEED = 12  # rate-limited endpoints, breakers that open and close, no crash


@pytest.fixture(scope="module")
def baseline() -> SimulationResult:
    result = simulate(SEED)
    assert result.violations == []
    return result


def test_seeds_use_limits_and_breakers() -> None:
    """Across the first 30 seeds, several have rate-limited endpoints and breakers that open and close."""
    limited = opened = closed = 0
    for seed in range(30):
        events = [r.event for r in simulate(seed).log]
        limited += any(isinstance(e, EndpointRegistered) and e.rate_limit is not None for e in events)
        opened += any(isinstance(e, BreakerOpened) for e in events)
        closed += any(isinstance(e, BreakerClosed) for e in events)
    assert limited >= 3, (limited, opened, closed)
    assert opened >= 3, (limited, opened, closed)
    assert closed >= 2, (limited, opened, closed)


def _endpoint_of(result: SimulationResult) -> dict[str, str]:
    return {
        r.event.delivery_id: r.event.endpoint_id for r in result.log if isinstance(r.event, DeliveryScheduled)
    }


def test_checker_catches_a_burst_beyond_the_limit(baseline: SimulationResult) -> None:
    """More requests in one second than limit + burst to a rate-limited endpoint is reported."""
    limits = {
        r.event.endpoint_id: r.event.rate_limit + r.event.rate_limit_burst
        for r in baseline.log
        if isinstance(r.event, EndpointRegistered) and r.event.rate_limit is not None
    }
    endpoint_of = _endpoint_of(baseline)
    request = next(
        r for r in baseline.requests if endpoint_of[r.headers["X-Attribution-Delivery-Id"]] in limits
    )
    extra = limits[endpoint_of[request.headers["X-Attribution-Delivery-Id"]]]
    violations = check(evolve(baseline, requests=[*baseline.requests, *([request] * extra)]))
    assert any("attempts in the second" in v for v in violations), violations


def test_checker_catches_a_second_request_behind_an_open_breaker(baseline: SimulationResult) -> None:
    """A request that starts just after the breaker opened (before the first probe time) is reported."""
    endpoint_of = _endpoint_of(baseline)
    opened = next(r.event for r in baseline.log if isinstance(r.event, BreakerOpened))
    request = next(
        r
        for r in baseline.requests
        if endpoint_of[r.headers["X-Attribution-Delivery-Id"]] == opened.endpoint_id
    )
    early = evolve(request, started_at=opened.opened_at + timedelta(seconds=1))
    violations = check(evolve(baseline, requests=[*baseline.requests, early]))
    assert any("the breaker opened at" in v or "one probe at a time" in v for v in violations), violations


def test_checker_catches_an_attempt_lost_without_a_crash(baseline: SimulationResult) -> None:
    """An abandoned attempt in a run without crashes means a held delivery lost a number."""
    scheduled = next(r for r in baseline.log if isinstance(r.event, DeliveryScheduled))
    assert isinstance(scheduled.event, DeliveryScheduled)
    lost = AttemptAbandoned(
        scheduled.event.delivery_id, scheduled.event.endpoint_id, 9, "?", scheduled.event.scheduled_at
    )
    log = [*baseline.log, RecordedEvent(len(baseline.log) + 1, scheduled.stream_id, 99, lost)]
    violations = check(evolve(baseline, log=log))
    assert any("abandoned without a crash" in v for v in violations), violations
