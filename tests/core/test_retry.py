"""The retry policy: the spec's schedule by default, configurable, and pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.outcomes import ErrorKind, HttpResponse, TransportFailure, is_success
from attribution_webhooks.core.retry import RetryPolicy, next_attempt_at

NOW = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
FAILED = HttpResponse(500, timedelta(milliseconds=20))


def test_default_is_the_spec_schedule() -> None:
    """Immediately, then after 1 minute, 5 minutes, 15 minutes and 1 hour: five attempts, then failed."""
    policy = RetryPolicy()
    assert policy.max_attempts == 5
    waits = [next_attempt_at(policy, attempt, FAILED, NOW) for attempt in range(1, 6)]
    assert waits == [
        NOW + timedelta(minutes=1),
        NOW + timedelta(minutes=5),
        NOW + timedelta(minutes=15),
        NOW + timedelta(hours=1),
        None,
    ]


def test_custom_delays_set_the_number_of_attempts() -> None:
    """A demo can retry after seconds; the list's length plus one is the number of attempts."""
    policy = RetryPolicy(delays=(timedelta(seconds=1), timedelta(seconds=2)))
    assert policy.max_attempts == 3
    assert next_attempt_at(policy, 2, FAILED, NOW) == NOW + timedelta(seconds=2)
    assert next_attempt_at(policy, 3, FAILED, NOW) is None


def test_jitter_stays_within_its_bound() -> None:
    """Jitter spreads a delay by at most ±the fraction, driven by the caller's random sample."""
    policy = RetryPolicy(jitter=0.1)
    low = next_attempt_at(policy, 1, FAILED, NOW, sample=0.0)
    high = next_attempt_at(policy, 1, FAILED, NOW, sample=0.999999)
    assert low == NOW + timedelta(seconds=54)
    assert high is not None
    assert NOW + timedelta(seconds=65.99) < high <= NOW + timedelta(seconds=66)
    assert next_attempt_at(policy, 1, FAILED, NOW, sample=0.5) == NOW + timedelta(minutes=1)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_postpones_within_the_cap(status: int) -> None:
    """A 429/503 Retry-After longer than the schedule wins, but never beyond the cap."""
    policy = RetryPolicy(retry_after_cap=timedelta(minutes=30))

    def answer(seconds: float) -> HttpResponse:
        return HttpResponse(status, timedelta(0), retry_after=timedelta(seconds=seconds))

    assert next_attempt_at(policy, 1, answer(10), NOW) == NOW + timedelta(minutes=1)
    assert next_attempt_at(policy, 1, answer(600), NOW) == NOW + timedelta(minutes=10)
    assert next_attempt_at(policy, 1, answer(86_400), NOW) == NOW + timedelta(minutes=30)


def test_retry_after_of_other_statuses_is_ignored() -> None:
    """Only 429 and 503 give Retry-After its meaning."""
    answer = HttpResponse(500, timedelta(0), retry_after=timedelta(hours=1))
    assert next_attempt_at(RetryPolicy(), 1, answer, NOW) == NOW + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("outcome", "success"),
    [
        (HttpResponse(200, timedelta(0)), True),
        (HttpResponse(204, timedelta(0)), True),
        (HttpResponse(299, timedelta(0)), True),
        (HttpResponse(301, timedelta(0)), False),
        (HttpResponse(304, timedelta(0)), False),
        (HttpResponse(401, timedelta(0)), False),
        (HttpResponse(500, timedelta(0)), False),
        (TransportFailure(ErrorKind.CONNECTION_REFUSED, timedelta(0)), False),
    ],
)
def test_only_2xx_delivers(outcome: HttpResponse | TransportFailure, success: bool) -> None:
    """Redirects are not followed and count as failures, like every other non-2xx answer."""
    assert is_success(outcome) is success


def test_bad_policies_are_refused() -> None:
    """Negative delays and jitter beyond ±50 % are configuration errors."""
    with pytest.raises(ValidationError, match="negative"):
        RetryPolicy(delays=(timedelta(seconds=-1),))
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=0.9)
