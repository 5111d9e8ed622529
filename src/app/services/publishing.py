"""Publishing: one event, a batch in one transaction, or a batch inside the caller's transaction.

Every way in plans the same appends (the event's stream, and a delivery stream per subscribed
endpoint) and writes a batch with one append, so it is all or nothing. Publishing is idempotent
per event id: an id already stored makes the append fail with a ``ConcurrencyConflict`` naming
its stream; that event's result is then the stored one (or ``DuplicateEventConflict`` if the
type or data differ), and the rest of the batch is appended again without it.

``publish_within`` writes into a transaction the embedding service opened (the transactional
outbox): through the ``Outbox`` port, synchronously, since that service's database code is
(Django, Flask, SQLAlchemy's ``Session``). The SQL store's ``within`` implements the port.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from attrs import define, field, frozen

from ...core import delivery as dlv
from ...core import endpoint as ep
from ...core.catalog import check_event_type, check_subscribable_type
from ...core.errors import ConcurrencyConflict, DomainError, ValidationError
from ...core.events import EventPublished, event_stream
from ...core.ports import IdGenerator, StreamAppend
from ...core.retry import RetryPolicy
from ...core.views import EndpointView, EventView
from ...core.wire import JsonValue, encode_json, format_timestamp

if TYPE_CHECKING:
    from .webhooks import WebhookService

__all__ = [
    "MAX_BATCH",
    "DuplicateEventConflict",
    "NewEvent",
    "Outbox",
    "PlannedEvent",
    "PublishResult",
    "check_event_id",
    "plan_event",
    "publish_batch",
    "publish_within",
]

_EVENT_ID = re.compile(r"evt_[A-Za-z0-9][A-Za-z0-9_.\-]{0,123}")
_ALL_DELIVERIES = 10_000
#: The most events one request of the API (``POST /events/batch``) or one transaction of the CLI
#: publishes: a bound on the transaction's size and on the time it holds the append lock.
MAX_BATCH = 1_000
_ENABLED = ep.EndpointStatus.ENABLED  # an enum member read through its class costs a descriptor call


@frozen
class NewEvent:
    """An event to publish. ``data`` is the JSON object of the spec's ``data`` field, already
    checked against the type's schema at the edge; ``id`` makes publishing idempotent.
    ``data_json``, if the edge has it, is ``encode_json(data)``'s text, made there at C speed
    (``adapters.canonical``): the body is then built around it rather than encoded again."""

    type: str
    data: Mapping[str, JsonValue]
    id: str | None = None
    timestamp: datetime | None = None
    data_json: str | None = None

    @property
    def canonical_data(self) -> str:
        """The canonical text of ``data``."""
        return self.data_json if self.data_json is not None else encode_json(self.data)


@frozen
class PublishResult:
    event_id: str
    delivery_ids: tuple[str, ...]
    duplicate: bool = False


class DuplicateEventConflict(DomainError):
    """An event id was reused for a different event."""


class Outbox(Protocol):
    """The caller's open database transaction, as a place to publish: what a publish reads and
    writes, inside that transaction. Synchronous, as the caller's database code is."""

    def subscribers(self, account_id: str, event_type: str) -> Sequence[EndpointView]:
        """As ``EndpointDirectory.subscribers``."""
        ...

    def event(self, account_id: str, event_id: str) -> EventView | None:
        """As ``DeliveryLog.event``."""
        ...

    def delivery_ids(self, account_id: str, event_id: str) -> Sequence[str]:
        """The ids of the event's deliveries."""
        ...

    def append(self, *appends: StreamAppend) -> int:
        """As ``EventStore.append``, in the transaction: kept if it commits, gone if not."""
        ...

    def deliveries_due(self) -> None:
        """Wake the dispatchers once the transaction commits (not if it rolls back)."""
        ...


@define
class _Event:
    """One event of a batch while it is being published."""

    new: NewEvent
    event_type: str
    event_id: str
    path: str = "$"  # where an error in the event is: ``$``, or ``events[3]`` in a batch
    result: PublishResult | None = None
    same_as: int | None = None  # the earlier event of the batch with this id


@define
class _Batch:
    """The events of one publish call; ``plan`` makes the appends of those not settled yet."""

    service: WebhookService
    account_id: str
    test: bool
    events: list[_Event] = field(factory=list)

    @classmethod
    def of(
        cls,
        service: WebhookService,
        account_id: str,
        news: Sequence[NewEvent],
        test: bool,
        indexed: bool | None = None,
    ) -> _Batch:
        """The batch of ``news``; an error names an event's field as ``events[3].id`` if
        ``indexed`` (default: if there are several events), else as ``id``."""
        batch = cls(service, account_id, test)
        first: dict[str, int] = {}
        many = len(news) > 1 if indexed is None else indexed
        new_id = service.ports.ids.new_id
        for index, new in enumerate(news):
            at = f"events[{index}]." if many else ""
            # A test event may be of an operational type (to try a notice receiver); a real one not.
            event_type = (check_subscribable_type if test else check_event_type)(new.type, f"{at}type").value
            event_id = check_event_id(new.id, f"{at}id") if new.id is not None else new_id("evt")
            event = _Event(new, event_type, event_id, f"events[{index}]" if many else "$")
            if event_id in first:  # the same id twice in one batch: one event, or a mistake
                event.same_as = first[event_id]
                earlier = batch.events[event.same_as]
                if (earlier.event_type, earlier.new.canonical_data) != (event_type, new.canonical_data):
                    raise DuplicateEventConflict(
                        f"{at}id: event {event_id} appears twice with different data"
                        f" (first as events[{event.same_as}])"
                    )
            else:
                first[event_id] = index
            batch.events.append(event)
        return batch

    @property
    def types(self) -> list[str]:
        return list(dict.fromkeys(e.event_type for e in self.events))

    def plan(self, subscribers: Mapping[str, Sequence[EndpointView]]) -> list[StreamAppend]:
        """The appends of every event not settled yet; each gets its delivery ids as a result,
        which stands if the append succeeds."""
        ports = self.service.ports  # a property that builds its value: read once, not per delivery
        now = ports.clock.now()
        ids, retry = ports.ids, ports.settings.retry
        stamp = format_timestamp(now)  # the time of every event of the batch sent without one
        appends: list[StreamAppend] = []
        for event in self.events:
            if event.same_as is not None or (event.result is not None and event.result.duplicate):
                continue
            new = event.new
            planned, delivery_ids = plan_event(
                PlannedEvent(
                    self.account_id,
                    event.event_id,
                    event.event_type,
                    new.data,
                    new.timestamp or now,
                    new.data_json,
                ),
                subscribers[event.event_type],
                now,
                ids,
                retry,
                test=self.test,
                path=event.path,
                timestamp=stamp if new.timestamp is None else None,
            )
            appends += planned
            event.result = PublishResult(event.event_id, delivery_ids)
        return appends

    def conflicting(self, conflict: ConcurrencyConflict) -> list[str]:
        """The ids of the events whose streams exist already; the conflict itself if it is
        about anything else."""
        streams = set(conflict.streams)
        found = [
            e.event_id
            for e in self.events
            if e.same_as is None and event_stream(self.account_id, e.event_id) in streams
        ]
        if not found:
            raise conflict
        return found

    def stored(self, event_id: str, existing: EventView | None, delivery_ids: Sequence[str]) -> None:
        """Settle the event ``event_id`` as the one already stored."""
        assert existing is not None, "a conflicting stream must exist"
        for event in self.events:
            if event.event_id != event_id or event.same_as is not None:
                continue
            if existing.event_type != event.event_type or _data_of(existing) != event.new.canonical_data:
                raise DuplicateEventConflict(
                    f"event {event_id} was already published with a different type or data; use a new id"
                )
            event.result = PublishResult(event_id, tuple(sorted(delivery_ids)), duplicate=True)

    @property
    def delivered(self) -> bool:
        """Whether the batch scheduled any new delivery."""
        return any(
            e.result is not None and not e.result.duplicate and e.result.delivery_ids for e in self.events
        )

    def results(self) -> list[PublishResult]:
        out: list[PublishResult] = []
        for event in self.events:
            if event.same_as is not None:
                earlier = out[event.same_as]
                out.append(PublishResult(earlier.event_id, earlier.delivery_ids, duplicate=True))
            else:
                assert event.result is not None
                out.append(event.result)
        return out


async def publish_batch(
    service: WebhookService,
    account_id: str,
    news: Sequence[NewEvent],
    *,
    test: bool = False,
    only: EndpointView | None = None,
    indexed: bool | None = None,
) -> list[PublishResult]:
    """Publish ``news`` in one append; a result per event, in order. ``only`` sends them to that
    endpoint alone (a test event) instead of every subscriber. ``indexed``: as ``_Batch.of``."""
    batch = _Batch.of(service, account_id, news, test, indexed)
    store = service.ports.store
    subscribers = {
        t: [only] if only is not None else await store.subscribers(account_id, t) for t in batch.types
    }
    while appends := batch.plan(subscribers):
        try:
            await store.append(*appends)
            break
        except ConcurrencyConflict as conflict:
            for event_id in batch.conflicting(conflict):
                stored = await store.deliveries(account_id, event_id=event_id, limit=_ALL_DELIVERIES)
                ids = [d.delivery.delivery_id for d in stored]
                batch.stored(event_id, await store.event(account_id, event_id), ids)
    if batch.delivered:
        service.ports.notices.deliveries_due()
    return batch.results()


def publish_within(
    service: WebhookService, outbox: Outbox, account_id: str, news: Sequence[NewEvent]
) -> list[PublishResult]:
    """Publish ``news`` inside the caller's transaction (see the module's docstring): nothing is
    delivered unless it commits. A result per event, in order."""
    batch = _Batch.of(service, account_id, news, test=False)
    subscribers = {t: outbox.subscribers(account_id, t) for t in batch.types}
    while appends := batch.plan(subscribers):
        try:
            outbox.append(*appends)
            break
        except ConcurrencyConflict as conflict:
            for event_id in batch.conflicting(conflict):
                ids = outbox.delivery_ids(account_id, event_id)
                batch.stored(event_id, outbox.event(account_id, event_id), ids)
    if batch.delivered:
        outbox.deliveries_due()
    return batch.results()


@frozen
class PlannedEvent:
    """An event about to be appended: its account, id, type, ``data`` and time (and ``data``'s
    canonical text, if known: ``NewEvent.data_json``)."""

    account_id: str
    event_id: str
    event_type: str
    data: Mapping[str, JsonValue]
    occurred_at: datetime
    data_json: str | None = None


def plan_event(
    event: PlannedEvent,
    recipients: Sequence[EndpointView],
    now: datetime,
    ids: IdGenerator,
    retry: RetryPolicy,
    *,
    test: bool = False,
    path: str = "$",
    timestamp: str | None = None,
) -> tuple[list[StreamAppend], tuple[str, ...]]:
    """The appends that publish ``event`` (its stream, then a delivery stream per recipient; a
    disabled recipient's delivery is held) and the new deliveries' ids. The one place an
    event's envelope and its deliveries are made: publishing and operational events share it.
    ``path`` names the event in an error (``events[3]`` in a batch); ``timestamp`` is
    ``format_timestamp(event.occurred_at)``, if the caller has it (a batch's events share one)."""
    if timestamp is None:
        timestamp = format_timestamp(event.occurred_at)
    if event.data_json is not None:
        # The same text as the envelope's encode_json: the id, type and timestamp are checked
        # ASCII strings that need no escape but quotes, and the keys are not integer-like.
        body = (
            f'{{"id":"{event.event_id}","type":"{event.event_type}","timestamp":"{timestamp}",'
            f'"data":{event.data_json}}}'
        )
    else:
        envelope: dict[str, JsonValue] = {
            "id": event.event_id,
            "type": event.event_type,
            "timestamp": timestamp,
            "data": event.data,
        }
        body = encode_json(envelope, path=path)
    account_id, event_id, event_type = event.account_id, event.event_id, event.event_type
    published = EventPublished(event_id, account_id, event_type, body, event.occurred_at, now, test)
    appends = [StreamAppend(event_stream(account_id, event_id), 0, (published,))]
    delivery_ids: list[str] = []
    new_delivery = dlv.initial_state()
    for view in recipients:
        delivery_id = ids.new_id("dlv")
        endpoint = view.endpoint
        held = endpoint.status is not _ENABLED
        # A test send never waits in an ordered endpoint's line (ADR 0016).
        command = dlv.Schedule(
            delivery_id,
            account_id,
            endpoint.endpoint_id,
            event_id,
            event_type,
            now,
            held,
            test,
            endpoint.ordered,
        )
        appends.append(StreamAppend(delivery_id, 0, tuple(dlv.decide(command, new_delivery, retry))))
        delivery_ids.append(delivery_id)
    return appends, tuple(delivery_ids)


def check_event_id(event_id: str, field_name: str = "id") -> str:
    """``event_id`` if it is a valid event id; a ValidationError naming ``field_name`` if not."""
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise ValidationError(
            field_name, "an event id starts with evt_ and has up to 128 letters, digits, '_', '.' or '-'"
        )
    return event_id


def _data_of(event: EventView) -> str:
    """The canonical text of the stored event's ``data``."""
    return encode_json(json.loads(event.body)["data"])
