"""Flow policies of one endpoint: a rate limit and a circuit breaker (ADR 0015). Pure.

**Rate limit.** At most ``per_second`` attempts start per second, plus ``burst`` more at once:
the generic cell rate algorithm (GCRA). The endpoint's *theoretical arrival time* (TAT) is when
the next attempt would go if the endpoint were sent to at exactly its rate; an attempt may start
at ``now`` when ``TAT - burst * interval <= now``, and moves the TAT one interval on. Over any
one-second window ``[t, t + 1 s)`` no more than ``per_second + burst`` attempts start. The
interval is rounded *up* to the microsecond, so rounding never lets one more through.

**Circuit breaker.** An endpoint with a ``breaker_threshold`` has its breaker opened (an
``BreakerOpened`` event in its stream) once that many attempts in a row have failed. While it is
open, due deliveries are handed back to the queue unattempted (not failed, not counted, not
abandoned) and one of them goes as a *probe* at a growing interval (``first_probe_after``,
doubling, capped at ``max_probe_interval``); a probe that succeeds closes it (``BreakerClosed``)
and the backlog is due again at once, paced by the rate limit. A probe is an ordinary attempt: it
counts towards its delivery's retry schedule, and the endpoint's auto-disable rule still applies.

Both are decided by ``admit``, over a ``Gate``: the few values that every worker process shares
through the store (which runs ``admit`` inside one transaction per claimed batch), so that N
processes together keep the limit and send one probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from attrs import evolve, frozen

from .errors import ValidationError

__all__ = [
    "MAX_BREAKER_THRESHOLD",
    "MAX_BURST",
    "MAX_RATE_LIMIT",
    "Admission",
    "Ask",
    "BreakerRules",
    "Gate",
    "Probe",
    "RateLimit",
    "admit",
    "breaker_should_open",
    "probe_interval",
    "validate_breaker_threshold",
    "validate_burst",
    "validate_rate_limit",
]

MAX_RATE_LIMIT = 10_000  # deliveries per second
MAX_BURST = 10_000
MAX_BREAKER_THRESHOLD = 1_000
_MICROSECOND = timedelta(microseconds=1)


@frozen
class RateLimit:
    """At most ``per_second`` attempts per second, and ``burst`` more at once."""

    per_second: int
    burst: int = 0

    @property
    def interval(self) -> timedelta:
        """One attempt's share of a second, rounded up to the microsecond."""
        return timedelta(microseconds=-(-1_000_000 // self.per_second))

    @property
    def tolerance(self) -> timedelta:
        return self.interval * self.burst


@frozen
class BreakerRules:
    """The service's probe schedule for open breakers."""

    first_probe_after: timedelta = timedelta(seconds=5)
    max_probe_interval: timedelta = timedelta(minutes=10)
    #: A probe handed out whose outcome is still unknown after this (its worker died) is re-sent.
    probe_lost_after: timedelta = timedelta(minutes=2)


def probe_interval(rules: BreakerRules, failed_probes: int) -> timedelta:
    """The wait before the next probe, after ``failed_probes`` probes failed since opening."""
    interval = rules.first_probe_after
    for _ in range(failed_probes):
        interval *= 2
        if interval >= rules.max_probe_interval:
            return rules.max_probe_interval
    return min(interval, rules.max_probe_interval)


def breaker_should_open(threshold: int | None, opened: bool, failures: int) -> bool:
    """Whether a closed breaker opens after ``failures`` consecutive failed attempts."""
    return threshold is not None and not opened and failures >= threshold


@frozen
class Probe:
    """The endpoint's breaker is open since ``opened_at``, when it had ``failures_at_open``
    consecutive failures; it has ``failures`` now (so ``failures - failures_at_open`` probes,
    or attempts in flight when it opened, have failed since)."""

    opened_at: datetime
    failures_at_open: int
    failures: int


@frozen
class Ask:
    """A worker's request for one endpoint: ``wanted`` deliveries would start now."""

    wanted: int
    rate_limit: RateLimit | None = None
    probe: Probe | None = None  # set while the breaker is open


@frozen
class Gate:
    """One endpoint's shared flow state, kept by the store.

    ``arrival`` is the GCRA's theoretical arrival time; ``probe_at_failures`` and ``probe_sent_at``
    identify the last probe handed out (the failure count it saw, and when), for the breaker
    episode that opened at ``probe_opened_at``."""

    arrival: datetime | None = None
    probe_opened_at: datetime | None = None
    probe_at_failures: int = 0
    probe_sent_at: datetime | None = None


@frozen
class Admission:
    """``admitted`` of the asked deliveries may start now; the others are offered again at
    ``again_at``, ``spacing`` apart (a hint that spreads a backlog: nothing is reserved)."""

    admitted: int
    again_at: datetime | None = None
    spacing: timedelta = timedelta(0)

    def returns(self, count: int, park: timedelta = timedelta(0)) -> Sequence[datetime]:
        """When to offer again each of ``count`` deliveries not admitted: the first at
        ``again_at``, the rest ``spacing`` apart, or all but the first ``park`` later still
        (behind an open breaker, where only one goes at a time)."""
        assert self.again_at is not None
        if count <= 0:
            return []
        if park:
            return [self.again_at, *([self.again_at + park] * (count - 1))]
        return [self.again_at + self.spacing * i for i in range(count)]


def admit(gate: Gate, ask: Ask, now: datetime, rules: BreakerRules) -> tuple[Gate, Admission]:
    """How many of the asked deliveries may start at ``now``, and the gate after them."""
    wanted = ask.wanted
    again_at: datetime | None = None
    probe = ask.probe
    if probe is not None:
        probe_at = next_probe_at(gate, probe, rules)
        if now < probe_at or wanted == 0:
            return gate, Admission(0, probe_at)
        wanted = 1
    limit = ask.rate_limit
    admitted = wanted
    arrival = gate.arrival
    spacing = timedelta(0)
    if limit is not None:
        interval, tolerance = limit.interval, limit.tolerance
        spacing = interval
        arrival = gate.arrival if gate.arrival is not None and gate.arrival > now else now
        admitted = 0
        while admitted < wanted and arrival - tolerance <= now:
            arrival += interval
            admitted += 1
        if admitted < ask.wanted:
            again_at = max(arrival - tolerance, now + _MICROSECOND)
    if probe is None:
        return evolve(gate, arrival=arrival), Admission(admitted, again_at, spacing)
    if not admitted:  # the rate limit holds the probe back
        return evolve(gate, arrival=arrival), Admission(0, again_at)
    # The probe goes. The others wait at least until the next probe, should this one fail.
    next_wait = probe_interval(rules, probe.failures - probe.failures_at_open + 1)
    return Gate(arrival, probe.opened_at, probe.failures, now), Admission(1, now + next_wait)


def next_probe_at(gate: Gate, probe: Probe, rules: BreakerRules) -> datetime:
    """When the open breaker's next probe may go: ``first_probe_after`` after opening; after a
    probe that failed, the growing interval after it; while a probe's outcome is unknown, only
    once it counts as lost."""
    if gate.probe_sent_at is None or gate.probe_opened_at != probe.opened_at:
        return probe.opened_at + rules.first_probe_after
    if probe.failures > gate.probe_at_failures:
        return gate.probe_sent_at + probe_interval(rules, probe.failures - probe.failures_at_open)
    return gate.probe_sent_at + rules.probe_lost_after


# --- validation (the API's fields) --------------------------------------------------------------


def validate_rate_limit(value: object, field: str = "rateLimit") -> int | None:
    """Deliveries per second, a whole number from 1 to MAX_RATE_LIMIT; None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE_LIMIT:
        raise ValidationError(
            field,
            f"give deliveries per second as a whole number from 1 to {MAX_RATE_LIMIT} (0 or null: no limit)",
        )
    return value


def validate_burst(value: object, field: str = "rateLimitBurst") -> int:
    """Extra deliveries allowed at once beyond the rate, from 0 to MAX_BURST."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BURST:
        raise ValidationError(field, f"give a whole number from 0 to {MAX_BURST}")
    return value


def validate_breaker_threshold(value: object, field: str = "circuitBreakerThreshold") -> int | None:
    """Consecutive failed attempts that open the breaker, 1 to MAX_BREAKER_THRESHOLD; None: off."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BREAKER_THRESHOLD:
        raise ValidationError(
            field,
            f"give the number of consecutive failed attempts that open the breaker, "
            f"from 1 to {MAX_BREAKER_THRESHOLD} (0 or null: no breaker)",
        )
    return value
