"""Who gets a delivery slot: the rule that keeps slow or hanging endpoints from taking the
capacity healthy ones need (issue 10.2, ADR 0014).

A worker has ``concurrency`` slots. An endpoint is *trusted* while it is known to answer quickly:
its recent attempts took less than ``slow_after`` on average, the last one did not time out, and
none of its attempts in flight has been running longer than ``slow_after``. It is *slow* if one
of those fails, and *unknown* before this worker has measured it. Slow endpoints together get
``untrusted`` slots; their excess deliveries are handed back to the queue and paced, not failed
and not counted as attempts. An unknown endpoint may always run one attempt (its probe), and
more in slots nobody holds (a burst to a new endpoint starts at once); within ``slow_after`` it
is either trusted or slow. Attempts of
slow and unknown endpoints count against the concurrency only up to the untrusted budget, so
even when endpoints that were trusted start hanging all at once, trusted endpoints keep their
slots (the worker then briefly runs more than ``concurrency`` attempts, mostly idle sockets).
Each account may hold at most ``per_account`` slots, so one tenant's backlog cannot take them
all either; that share is the whole worker by default, because a lone tenant would otherwise
leave slots idle while its deliveries are handed back.

Pure: the worker passes in its counts and measurements.
"""

from __future__ import annotations

from enum import Enum

from attrs import frozen

__all__ = ["Load", "SlotRules", "Standing", "Verdict", "occupied", "pace_seconds", "standing", "verdict"]


class Verdict(Enum):
    """What to do with a delivery that wants a slot."""

    START = "start"
    #: Its endpoint has as many attempts running as it may: queue it behind them.
    WAIT = "wait"
    #: No slot for it now (untrusted budget, its account's share or the whole worker full):
    #: hand it back to the queue, due again a little later.
    PACE = "pace"


class Standing(Enum):
    """What a worker knows of an endpoint's speed."""

    TRUSTED = "trusted"
    UNKNOWN = "unknown"
    SLOW = "slow"


@frozen
class SlotRules:
    """How a worker's slots are shared."""

    concurrency: int
    per_endpoint: int
    per_account: int
    untrusted: int
    #: Seconds: an endpoint slower than this on average, or with an attempt running longer, is untrusted.
    slow_after: float

    @classmethod
    def sharing(
        cls, concurrency: int, per_endpoint: int, slow_after: float, account_share: float = 1.0
    ) -> SlotRules:
        """Untrusted endpoints together get a quarter of the slots, an account ``account_share``
        of them (at least one each)."""
        return cls(
            concurrency=concurrency,
            per_endpoint=per_endpoint,
            per_account=max(1, int(concurrency * account_share)),
            untrusted=max(1, concurrency // 4),
            slow_after=slow_after,
        )


@frozen
class Load:
    """Attempts running when the decision is taken."""

    #: Attempts of trusted endpoints.
    trusted: int
    #: Attempts of untrusted endpoints.
    untrusted: int
    #: Attempts of the delivery's endpoint.
    endpoint: int
    #: Attempts of the delivery's account.
    account: int


def standing(
    rules: SlotRules, latency: float | None, timed_out: bool, oldest_running: float | None
) -> Standing:
    """An endpoint's standing: ``latency`` is its recent average in seconds (None: never
    measured), ``timed_out`` whether its last attempt timed out, ``oldest_running`` how long its
    oldest attempt in flight has run (None: none is)."""
    if timed_out or (oldest_running is not None and oldest_running > rules.slow_after):
        return Standing.SLOW
    if latency is None:
        return Standing.UNKNOWN
    return Standing.SLOW if latency > rules.slow_after else Standing.TRUSTED


def occupied(rules: SlotRules, load: Load) -> int:
    """Slots counted as taken: untrusted attempts only up to their budget."""
    return load.trusted + min(load.untrusted, rules.untrusted)


def verdict(rules: SlotRules, load: Load, endpoint: Standing) -> Verdict:
    """Whether a delivery of an endpoint of this standing, with ``load`` running, may start now."""
    if load.endpoint >= rules.per_endpoint:
        return Verdict.WAIT
    if occupied(rules, load) >= rules.concurrency or load.account >= rules.per_account:
        return Verdict.PACE
    if endpoint is Standing.SLOW and load.untrusted >= rules.untrusted:
        return Verdict.PACE
    if (
        endpoint is Standing.UNKNOWN
        and load.endpoint > 0
        and load.trusted + load.untrusted >= rules.concurrency
    ):
        return Verdict.WAIT  # behind its probe, which tells soon whether it is fast
    return Verdict.START


def pace_seconds(rules: SlotRules, latency: float, is_trusted: bool, untrusted_endpoints: int) -> float:
    """How far apart to offer again deliveries an endpoint has no room for: one slot's worth of its
    ``latency``. A trusted endpoint has ``per_endpoint`` slots; untrusted endpoints share theirs,
    so each of ``untrusted_endpoints`` gets a fraction, and its backlog comes back that much slower
    instead of being claimed and handed back again and again."""
    if is_trusted:
        return latency / rules.per_endpoint
    share = min(rules.per_endpoint, rules.untrusted / max(1, untrusted_endpoints))
    return latency / max(share, 1e-3)
