"""Flow policies (rate limit, circuit breaker probes), as given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attribution_webhooks.core import flow
from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.flow import Admission, Ask, BreakerRules, Gate, Probe, RateLimit

NOW = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
RULES = BreakerRules()
SECOND = timedelta(seconds=1)


def test_no_policy_admits_everything() -> None:
    """An endpoint without a limit or an open breaker: every asked delivery starts."""
    gate, admission = flow.admit(Gate(), Ask(50), NOW, RULES)
    assert admission == Admission(50)
    assert gate == Gate()


def test_rate_limit_admits_one_plus_burst_at_once() -> None:
    """Given 10/s with a burst of 2, when 10 are asked at once, then 3 start and the rest are
    offered again one interval apart from when the next may go."""
    gate, admission = flow.admit(Gate(), Ask(10, RateLimit(10, 2)), NOW, RULES)
    assert admission.admitted == 3
    assert admission.again_at == NOW + timedelta(milliseconds=100)
    assert admission.spacing == timedelta(milliseconds=100)
    assert gate.arrival == NOW + timedelta(milliseconds=300)
    assert admission.returns(3) == [NOW + timedelta(milliseconds=100 * i) for i in (1, 2, 3)]


def test_rate_limit_interval_rounds_up() -> None:
    """3/s: the interval is 333,334 µs, so the fourth attempt is past the one-second window."""
    assert RateLimit(3).interval == timedelta(microseconds=333_334)


def _starts(limit: RateLimit, asks: list[tuple[datetime, int]]) -> list[datetime]:
    gate, starts = Gate(), []
    for at, wanted in asks:
        gate, admission = flow.admit(gate, Ask(wanted, limit), at, RULES)
        starts += [at] * admission.admitted
    return starts


@pytest.mark.parametrize(("rate", "burst"), [(1, 0), (3, 0), (7, 2), (10, 5), (100, 0)])
def test_no_one_second_window_exceeds_rate_plus_burst(rate: int, burst: int) -> None:
    """Whatever the asks, no window [t, t + 1 s) holds more than rate + burst starts."""
    asks = [(NOW + timedelta(milliseconds=37 * i), 1 + i % 4) for i in range(400)]
    starts = _starts(RateLimit(rate, burst), asks)
    assert len(starts) > rate  # some went
    for i, first in enumerate(starts):
        window = [t for t in starts[i:] if t < first + SECOND]
        assert len(window) <= rate + burst


def test_rate_limit_recovers_after_idle() -> None:
    """After an idle spell the full burst is available again, not more."""
    limit = RateLimit(5, 1)
    gate, first = flow.admit(Gate(), Ask(10, limit), NOW, RULES)
    gate, later = flow.admit(gate, Ask(10, limit), NOW + timedelta(minutes=1), RULES)
    assert first.admitted == later.admitted == 2


def test_closed_breaker_probe_waits_first_interval() -> None:
    """Given a breaker that just opened, no delivery goes before the first probe time."""
    probe = Probe(NOW, 5, 5)
    gate, admission = flow.admit(Gate(), Ask(4, probe=probe), NOW + SECOND, RULES)
    assert admission == Admission(0, NOW + RULES.first_probe_after)
    assert gate == Gate()


def test_open_breaker_sends_one_probe_at_a_time() -> None:
    """At the probe time one delivery goes; while its outcome is unknown no other does."""
    probe = Probe(NOW, 5, 5)
    at = NOW + RULES.first_probe_after
    gate, admission = flow.admit(Gate(), Ask(4, probe=probe), at, RULES)
    assert admission.admitted == 1
    assert gate.probe_sent_at == at
    gate, again = flow.admit(gate, Ask(3, probe=probe), at + SECOND, RULES)
    assert again.admitted == 0
    assert again.again_at == at + RULES.probe_lost_after


def test_failed_probes_space_out_and_cap() -> None:
    """Each failed probe doubles the wait before the next, up to the cap."""
    assert [flow.probe_interval(RULES, k) for k in range(3)] == [
        timedelta(seconds=5),
        timedelta(seconds=10),
        timedelta(seconds=20),
    ]
    assert flow.probe_interval(RULES, 60) == RULES.max_probe_interval
    sent = NOW + RULES.first_probe_after
    gate = Gate(None, NOW, 5, sent)
    after_one_failure = Probe(NOW, 5, 6)
    assert flow.next_probe_at(gate, after_one_failure, RULES) == sent + timedelta(seconds=10)


def test_probe_is_also_rate_limited() -> None:
    """A probe is an attempt: the rate limit holds it back like any other."""
    probe = Probe(NOW, 5, 5)
    at = NOW + RULES.first_probe_after
    busy = Gate(at + SECOND, None, 0, None)
    _, admission = flow.admit(busy, Ask(1, RateLimit(1), probe), at, RULES)
    assert admission.admitted == 0


def test_breaker_opens_at_threshold_only_when_configured() -> None:
    """The breaker opens on the threshold-th consecutive failure; never without a threshold."""
    assert flow.breaker_should_open(3, False, 3)
    assert not flow.breaker_should_open(3, False, 2)
    assert not flow.breaker_should_open(3, True, 9)
    assert not flow.breaker_should_open(None, False, 1000)


@pytest.mark.parametrize("value", [0, -1, 10_001, 1.5, "10", True])
def test_rate_limit_validation(value: object) -> None:
    """A rate limit is a whole number from 1 to 10,000 (or null)."""
    with pytest.raises(ValidationError, match="rateLimit"):
        flow.validate_rate_limit(value)


def test_valid_settings_pass() -> None:
    """Null turns the limit and breaker off; whole numbers in range are kept."""
    assert flow.validate_rate_limit(None) is None
    assert flow.validate_rate_limit(25) == 25
    assert flow.validate_burst(0) == 0
    assert flow.validate_breaker_threshold(None) is None
    assert flow.validate_breaker_threshold(5) == 5
    with pytest.raises(ValidationError):
        flow.validate_breaker_threshold(0)
