"""The worker's slots: which attempts run, per endpoint and per account, what each endpoint's
recent attempts took, and, through the pure rule in ``core.fairness``, who may start next.

Trust is worked out once per decision round (``refresh``), not per delivery: a round decides a
claimed batch or the deliveries waiting for their endpoint, and every delivery in it is weighed
against the same counts, kept up to date as attempts start.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from attrs import define, field

from ...core import fairness
from ...core.fairness import Load, SlotRules, Standing, Verdict

__all__ = ["Slots"]

_FIRST_LATENCY_GUESS = 0.1  # seconds, for an endpoint this worker has not sent to yet
_MAX_REMEMBERED = 10_000  # endpoints whose latency and pacing a worker keeps


@define
class Slots:
    rules: SlotRules
    #: endpoint → delivery → when its attempt started (insertion order: oldest first).
    _running: dict[str, dict[str, datetime]] = field(factory=dict, init=False)
    _accounts: dict[str, int] = field(factory=dict, init=False)
    _latency: dict[str, float] = field(factory=dict, init=False)
    _timed_out: set[str] = field(factory=set, init=False)
    _paced_until: dict[str, datetime] = field(factory=dict, init=False)
    # The round's view: each running endpoint's trust, and the attempts of either kind.
    _trust: dict[str, Standing] = field(factory=dict, init=False)
    _trusted_running: int = field(default=0, init=False)
    _untrusted_running: int = field(default=0, init=False)
    _now: datetime | None = field(default=None, init=False)

    def running(self, endpoint_id: str) -> int:
        attempts = self._running.get(endpoint_id)
        return len(attempts) if attempts else 0

    def refresh(self, now: datetime) -> None:
        """Start a decision round at ``now``: weigh every running endpoint afresh."""
        self._now = now
        self._trust.clear()
        self._trusted_running = self._untrusted_running = 0
        for endpoint_id, attempts in self._running.items():
            if self.trusted(endpoint_id):
                self._trusted_running += len(attempts)
            else:
                self._untrusted_running += len(attempts)

    def free(self) -> int:
        """Slots left this round (untrusted attempts count only up to their budget)."""
        load = Load(self._trusted_running, self._untrusted_running, 0, 0)
        return self.rules.concurrency - fairness.occupied(self.rules, load)

    def verdict(self, endpoint_id: str, account_id: str) -> Verdict:
        load = Load(
            self._trusted_running,
            self._untrusted_running,
            self.running(endpoint_id),
            self._accounts.get(account_id, 0),
        )
        return fairness.verdict(self.rules, load, self._standing(endpoint_id))

    def started(self, delivery_id: str, endpoint_id: str, account_id: str, now: datetime) -> None:
        if self.trusted(endpoint_id):
            self._trusted_running += 1
        else:
            self._untrusted_running += 1
        self._running.setdefault(endpoint_id, {})[delivery_id] = now
        self._accounts[account_id] = self._accounts.get(account_id, 0) + 1

    def finished(self, delivery_id: str, endpoint_id: str, account_id: str) -> None:
        """An attempt ended (the round's counts are redone by the next ``refresh``)."""
        attempts = self._running.get(endpoint_id)
        if attempts is not None:
            attempts.pop(delivery_id, None)
            if not attempts:
                del self._running[endpoint_id]
        left = self._accounts.get(account_id, 1) - 1
        if left > 0:
            self._accounts[account_id] = left
        else:
            self._accounts.pop(account_id, None)

    def measured(self, endpoint_id: str, seconds: float, timed_out: bool) -> None:
        """An attempt to ``endpoint_id`` took ``seconds`` (and timed out, or not)."""
        if len(self._latency) > _MAX_REMEMBERED:
            self._latency.clear()  # an estimate per endpoint; it is relearnt from the next attempt
            self._timed_out.clear()
        previous = self._latency.get(endpoint_id, seconds)
        self._latency[endpoint_id] = 0.8 * previous + 0.2 * seconds
        if timed_out:
            self._timed_out.add(endpoint_id)
        else:
            self._timed_out.discard(endpoint_id)

    def pace(self, endpoint_id: str, now: datetime) -> datetime:
        """When to offer again a delivery its endpoint has no room for: after the ones already
        put off, one slot's worth of that endpoint's recent latency later. A backlog behind a
        slow endpoint is so spread out over the time it will take, instead of being handed
        back and claimed again and again while other endpoints wait."""
        latency = max(self._latency.get(endpoint_id, _FIRST_LATENCY_GUESS), self._oldest(endpoint_id) or 0.0)
        untrusted = sum(1 for standing in self._trust.values() if standing is not Standing.TRUSTED)
        seconds = fairness.pace_seconds(self.rules, max(latency, 0.01), self.trusted(endpoint_id), untrusted)
        until = max(self._paced_until.get(endpoint_id, now), now) + timedelta(seconds=seconds)
        if len(self._paced_until) > _MAX_REMEMBERED:  # past paces no longer matter
            self._paced_until = {e: t for e, t in self._paced_until.items() if t > now}
        self._paced_until[endpoint_id] = until
        return until

    def _oldest(self, endpoint_id: str) -> float | None:
        attempts = self._running.get(endpoint_id)
        if not attempts or self._now is None:
            return None
        return (self._now - next(iter(attempts.values()))).total_seconds()

    def trusted(self, endpoint_id: str) -> bool:
        return self._standing(endpoint_id) is Standing.TRUSTED

    def slow(self, endpoint_id: str) -> bool:
        return self._standing(endpoint_id) is Standing.SLOW

    def _standing(self, endpoint_id: str) -> Standing:
        standing = self._trust.get(endpoint_id)
        if standing is None:
            latency = self._latency.get(endpoint_id)
            timed_out = endpoint_id in self._timed_out
            standing = fairness.standing(self.rules, latency, timed_out, self._oldest(endpoint_id))
            self._trust[endpoint_id] = standing
        return standing
