"""The retry policy: data, plus one pure function that says when the next attempt is due."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from attrs import field, frozen, validators

from .errors import ValidationError
from .outcomes import HttpResponse, Outcome

__all__ = ["SPEC_DELAYS", "RetryPolicy", "next_attempt_at"]

# The spec: immediately, then after 1 minute, 5 minutes, 15 minutes and 1 hour.
SPEC_DELAYS: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
)

_RETRY_AFTER_STATUSES = frozenset({429, 503})


def _as_delays(delays: Iterable[timedelta]) -> tuple[timedelta, ...]:
    return tuple(delays)


def _check_delays(_instance: object, _attribute: object, delays: tuple[timedelta, ...]) -> None:
    for index, delay in enumerate(delays):
        if delay < timedelta(0):
            raise ValidationError(f"retry.delays[{index}]", "a delay cannot be negative")


@frozen
class RetryPolicy:
    """When to try again after a failed attempt.

    The first attempt is immediate; ``delays[i]`` is the wait after failed attempt ``i + 1``,
    counted from when that attempt's outcome was known. After ``len(delays) + 1`` failed attempts
    the delivery has failed. ``jitter`` spreads each delay by up to ±that fraction, using a sample
    the caller draws from its random source. A 429 or 503 with ``Retry-After`` postpones the retry
    to at least that long, but never beyond ``retry_after_cap``.
    """

    delays: tuple[timedelta, ...] = field(default=SPEC_DELAYS, converter=_as_delays, validator=_check_delays)
    jitter: float = field(default=0.0, validator=[validators.ge(0.0), validators.le(0.5)])
    retry_after_cap: timedelta = timedelta(hours=1)

    @property
    def max_attempts(self) -> int:
        """Attempts in one sequence, the immediate one included."""
        return len(self.delays) + 1


def next_attempt_at(
    policy: RetryPolicy,
    attempt: int,
    outcome: Outcome,
    failed_at: datetime,
    sample: float = 0.5,
) -> datetime | None:
    """When failed attempt number ``attempt`` (1-based) should be followed up; None if it was the last.

    ``sample`` is a number in [0, 1) from the caller's random source; 0.5 means no jitter.
    """
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    if attempt > len(policy.delays):
        return None
    delay = policy.delays[attempt - 1]
    if policy.jitter:
        delay *= 1.0 + policy.jitter * (2.0 * sample - 1.0)
    if (
        isinstance(outcome, HttpResponse)
        and outcome.status in _RETRY_AFTER_STATUSES
        and outcome.retry_after is not None
    ):
        delay = max(delay, min(outcome.retry_after, policy.retry_after_cap))
    return failed_at + delay
