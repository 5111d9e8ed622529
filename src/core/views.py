"""Read-model rows: what the storage adapters keep up to date, in the same transaction as the
events they derive from, so the API and the worker query instead of replaying streams."""

from __future__ import annotations

from datetime import datetime

from attrs import frozen

from .delivery import Delivery
from .endpoint import Endpoint
from .outcomes import ErrorKind

__all__ = [
    "AttemptView",
    "DeliveryView",
    "DueDelivery",
    "EndpointHealth",
    "EndpointView",
    "EventView",
    "QueueStats",
]


@frozen
class EndpointView:
    """An endpoint's state at stream ``version``, plus when its current run of failures began:
    the start of the first failed attempt recorded after its last success or its last enabling."""

    endpoint: Endpoint
    version: int
    failing_since: datetime | None = None
    #: Attempts failed in a row since its last success, registering or enabling (ADR 0015).
    failures: int = 0


@frozen
class EventView:
    """A published webhook event."""

    event_id: str
    account_id: str
    event_type: str
    body: str
    occurred_at: datetime
    published_at: datetime
    test: bool = False


@frozen
class DeliveryView:
    """A delivery's state at stream ``version`` and a summary of its latest attempt."""

    delivery: Delivery
    version: int
    created_at: datetime
    updated_at: datetime
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: ErrorKind | None = None


@frozen
class AttemptView:
    """One line of the delivery log."""

    attempt: int
    started_at: datetime
    elapsed_ms: float
    succeeded: bool
    status_code: int | None
    error: ErrorKind | None
    detail: str
    response_body: str


@frozen
class EndpointHealth:
    """An endpoint's attempts over a recent window: how many, how many succeeded, the latest."""

    attempts: int
    succeeded: int
    last_attempt_at: datetime | None = None
    last_succeeded: bool | None = None


@frozen
class DueDelivery:
    """A pending delivery leased to one worker until ``leased_until``; ``lease`` identifies the lease.

    ``attempt`` is the number the lease's attempt takes. It is more than ``delivery.attempts + 1``
    when earlier leases started attempts whose outcome was never recorded (their worker died):
    those are logged as abandoned with this attempt's outcome."""

    delivery: Delivery
    version: int
    lease: str
    leased_until: datetime
    body: str
    attempt: int

    @property
    def attempt_before(self) -> int | None:
        """The queue's attempt number as it was before this lease: what handing it back restores."""
        earlier = self.attempt - 1
        return earlier if earlier > self.delivery.attempts else None


@frozen
class QueueStats:
    """The queue at one moment, for monitoring: ``pending`` deliveries wait for an attempt
    (leased ones included), ``due`` of them could be claimed now, the oldest of those since
    ``oldest_due_at``; ``held`` deliveries wait for their endpoint to be enabled again, and
    ``disabled_endpoints`` are disabled (deleted ones are not counted)."""

    pending: int = 0
    due: int = 0
    oldest_due_at: datetime | None = None
    held: int = 0
    disabled_endpoints: int = 0
