"""The ports: everything the core needs from the outside world, as typing.Protocol classes.

Adapters implement them (``attribution_webhooks.adapters``); the fakes used by the deterministic
simulation live in ``attribution_webhooks.testing``. Storage methods are async so a store may do
its I/O off the event loop; none of them may be called with naive datetimes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from attrs import frozen

from .delivery import DeliveryStatus
from .events import DomainEvent
from .flow import Admission, Ask, BreakerRules
from .outcomes import Outcome
from .retention import PurgeReport
from .views import (
    AttemptView,
    DeliveryView,
    DueDelivery,
    EndpointHealth,
    EndpointView,
    EventView,
    QueueStats,
)

__all__ = [
    "Clock",
    "DeliveryLog",
    "DeliveryQueue",
    "EndpointDirectory",
    "EventStore",
    "History",
    "FlowGates",
    "IdGenerator",
    "Notices",
    "OutboundRequest",
    "RandomSource",
    "RecordedEvent",
    "Signer",
    "Storage",
    "StreamAppend",
    "Transport",
]


@frozen
class StreamAppend:
    """Append ``events`` to ``stream_id``, which must be at ``expected_version`` (0: a new stream)."""

    stream_id: str
    expected_version: int
    events: tuple[DomainEvent, ...]


@frozen
class RecordedEvent:
    """An event as stored: ``version`` within its stream, ``position`` in the global order."""

    position: int
    stream_id: str
    version: int
    event: DomainEvent


class EventStore(Protocol):
    async def append(self, *appends: StreamAppend) -> int:
        """Append to one or more streams atomically and return the last global position written.

        Either every stream is at its expected version and everything is written (and every read
        model updated in the same transaction), or ConcurrencyConflict is raised naming the
        streams that were not, and nothing is written.
        """
        ...

    async def read(self, stream_id: str) -> Sequence[RecordedEvent]:
        """All events of one stream in version order (empty if the stream does not exist)."""
        ...

    async def read_all(self, after: int = 0, limit: int = 1000) -> Sequence[RecordedEvent]:
        """Up to ``limit`` events with a global position greater than ``after``, in order."""
        ...


class EndpointDirectory(Protocol):
    async def endpoint(self, endpoint_id: str) -> EndpointView | None:
        """One endpoint, deleted ones included; None if it never existed."""
        ...

    async def endpoints(self, endpoint_ids: Collection[str]) -> Mapping[str, EndpointView]:
        """The endpoints among ``endpoint_ids`` that exist, keyed by id."""
        ...

    async def subscribers(self, account_id: str, event_type: str) -> Sequence[EndpointView]:
        """Every endpoint of the account subscribed to ``event_type`` that is not deleted
        (disabled ones included: they get held deliveries), in registration order."""
        ...

    async def list_endpoints(
        self, account_id: str, after: str | None = None, limit: int = 100
    ) -> Sequence[EndpointView]:
        """The account's endpoints that are not deleted, by id ascending, with id > ``after``."""
        ...


class DeliveryQueue(Protocol):
    async def claim(self, now: datetime, limit: int, lease_for: timedelta) -> Sequence[DueDelivery]:
        """Lease up to ``limit`` pending deliveries due at or before ``now``, earliest first.

        A leased delivery is not handed out again until ``now + lease_for`` (or until the end of
        the lease's last renewal); if its outcome is not recorded by then (the worker died), it
        becomes due again. Two callers never hold the same delivery at once. Each lease takes the
        next attempt number (``DueDelivery.attempt``): one past the recorded attempts and past
        every earlier lease's since the last recorded event, so an attempt whose worker died is
        never numbered twice. Its cost must not grow with the number of finished deliveries.
        """
        ...

    async def renew(self, leases: Sequence[DueDelivery], until: datetime) -> None:
        """Extend each lease in ``leases`` to ``until`` while it is still held: the heartbeat of a
        live worker, which keeps its leases short so that a dead one's expire soon. A lease that
        has ended (outcome recorded, handed back) or passed to another worker is left alone."""
        ...

    async def release(self, returns: Sequence[tuple[DueDelivery, datetime]]) -> None:
        """Hand back leased deliveries unattempted, each due again at the time paired with it;
        their attempt numbers are given back too. A lease that has since passed to another
        worker is left alone."""
        ...

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery is (or becomes again) claimable; None if none is pending."""
        ...

    async def queue_stats(self, now: datetime) -> QueueStats:
        """How many deliveries are pending, due at ``now`` (and since when the oldest of them),
        held; how many endpoints are disabled. Read at every metrics scrape: kept to counts."""
        ...


class DeliveryLog(Protocol):
    async def delivery(self, delivery_id: str) -> DeliveryView | None:
        """One delivery; None if it does not exist."""
        ...

    async def attempts(self, delivery_id: str) -> Sequence[AttemptView]:
        """The delivery's attempts, oldest first, across every attempt sequence."""
        ...

    async def attempts_of(self, delivery_ids: Collection[str]) -> Mapping[str, Sequence[AttemptView]]:
        """The attempts of each of ``delivery_ids``, as ``attempts`` gives them, in one query (a
        page of the log costs the same whatever its size); ids without attempts are left out."""
        ...

    async def deliveries(
        self,
        account_id: str,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        statuses: Collection[DeliveryStatus] | None = None,
        since: datetime | None = None,
        before: str | None = None,
        limit: int = 100,
        event_type: str | None = None,
        created_from: datetime | None = None,
        created_until: datetime | None = None,
    ) -> Sequence[DeliveryView]:
        """The account's deliveries, newest first (by id), filtered by the given criteria;
        ``since`` compares with the last update, ``before`` is an exclusive id cursor, and
        ``created_from`` (inclusive) / ``created_until`` (exclusive) bound the creation time."""
        ...

    async def endpoint_health(
        self, account_id: str, since: datetime, deliveries: int = 2000
    ) -> Mapping[str, EndpointHealth]:
        """Per endpoint of the account, the attempts started at or after ``since`` among its
        latest ``deliveries`` deliveries (by id): a bound on the work, whatever the traffic.
        Endpoints without such attempts are left out."""
        ...

    async def event(self, account_id: str, event_id: str) -> EventView | None:
        """One published event of the account; None if it does not exist."""
        ...


class History(Protocol):
    """Retention's access to a store (ADR 0018; the rules are ``core.retention``'s). Each call is
    one short transaction that removes streams and their read-model rows together. The stream
    holding the newest event of the log is never removed, so positions are never reused."""

    async def purge_events(
        self, horizon: datetime, now: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> PurgeReport:
        """Look at up to ``limit`` published events published before ``horizon``, oldest first
        (by ``(published_at, account_id, event_id)``, after the cursor ``after``), and remove
        each that ``event_purgeable`` allows: its stream, its deliveries' streams, their rows
        and attempts; a tombstone dated ``now`` remembers it. The report's cursor is the last
        event looked at, or None once fewer than ``limit`` were left before the horizon."""
        ...

    async def purge_deleted(self, horizon: datetime, limit: int) -> PurgeReport:
        """Remove up to ``limit`` deleted endpoints that ``endpoint_purgeable`` allows (stream, row
        and any key left), and up to ``limit`` tombstones made before ``horizon``."""
        ...

    async def purged_event(self, account_id: str, event_id: str) -> tuple[datetime, datetime] | None:
        """The tombstone of an event of the account that retention removed: when it was
        published and when it was removed; None if there is none."""
        ...


class FlowGates(Protocol):
    """Each endpoint's shared flow state (ADR 0015): what keeps a rate limit and a breaker's one
    probe true across every worker process of one database."""

    async def admit(
        self, asks: Mapping[str, Ask], now: datetime, rules: BreakerRules
    ) -> Mapping[str, Admission]:
        """For each endpoint in ``asks``, how many of its asked deliveries may start at ``now``:
        ``core.flow.admit`` over the endpoint's ``Gate``, read and written in one transaction,
        so that concurrent callers never admit more between them than one caller would."""
        ...

    async def wake(self, endpoint_id: str, now: datetime) -> None:
        """The endpoint's breaker closed: its pending deliveries not leased that were handed back
        to a later time than their own due time are due again at their due time (now at the
        latest). Retries due later keep their time."""
        ...


class Storage(EventStore, EndpointDirectory, DeliveryQueue, DeliveryLog, FlowGates, Protocol):
    """The event store together with the read models derived from it."""


@frozen
class OutboundRequest:
    """A signed POST, ready to send. ``timeout`` bounds the whole exchange."""

    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    timeout: timedelta


class Transport(Protocol):
    async def send(self, request: OutboundRequest) -> Outcome:
        """POST the request; return the response or a classified failure. Never raises for
        network trouble, and never follows redirects."""
        ...


class Signer(Protocol):
    def sign(self, body: bytes, secret: str) -> str:
        """The spec's signature: lowercase hex HMAC-SHA256 of ``body`` keyed by the secret's UTF-8 bytes."""
        ...

    def sign_standard(self, message_id: str, timestamp: int, body: bytes, secret: str) -> str:
        """A Standard Webhooks ``v1`` signature (base64, without the ``v1,`` prefix)."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC. Never goes backwards in a fake."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class IdGenerator(Protocol):
    def new_id(self, prefix: str) -> str:
        """A new unique id such as ``wh_…``; ids made later sort after ids made earlier."""
        ...


class RandomSource(Protocol):
    def random(self) -> float:
        """A number in [0, 1)."""
        ...

    def token_bytes(self, size: int) -> bytes:
        """``size`` unpredictable bytes (a real adapter uses the OS's secure source)."""
        ...


class Notices(Protocol):
    """Announcements of new work, so a dispatcher need not wait for its next poll."""

    def deliveries_due(self) -> None:
        """Deliveries may have become due (published, released, redelivered)."""
        ...

    def endpoint_changed(self, endpoint_id: str) -> None:
        """An endpoint changed (disabled, deleted, new URL or secret): drop stale copies of it."""
        ...
