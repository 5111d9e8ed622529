"""How hard one worker pushes: the dispatcher's settings."""

from __future__ import annotations

from datetime import timedelta

from attrs import frozen

__all__ = ["DispatchSettings"]


@frozen
class DispatchSettings:
    """How hard one worker pushes. A lease lasts ``lease`` and is renewed every ``heartbeat``
    while the worker lives: the lease is how long a dead worker's deliveries wait. An endpoint
    slower than ``slow_after`` draws on the slots shared by untrusted endpoints; one account may
    hold ``account_share`` of the slots (see ``core.fairness``)."""

    concurrency: int = 64
    per_endpoint_concurrency: int = 8
    claim_batch: int = 128
    lease: timedelta = timedelta(seconds=6)
    heartbeat: timedelta = timedelta(seconds=1)
    slow_after: timedelta = timedelta(seconds=1)
    account_share: float = 1.0
    request_timeout: timedelta = timedelta(seconds=15)
    poll_interval: timedelta = timedelta(seconds=1)
    shutdown_grace: timedelta = timedelta(seconds=10)
    user_agent: str = "attribution-webhooks/0.1 (+https://github.com/attribution/webhooks)"

    def __attrs_post_init__(self) -> None:
        if self.heartbeat <= timedelta(0) or self.lease < 3 * self.heartbeat:
            raise ValueError("the heartbeat must be positive and the lease at least three heartbeats")
        if not 0 < self.account_share <= 1:
            raise ValueError("an account's share of the slots must be in (0, 1]")
        if self.concurrency < 1 or self.per_endpoint_concurrency < 1 or self.claim_batch < 1:
            raise ValueError("concurrency, per-endpoint concurrency and claim batch must be positive")
