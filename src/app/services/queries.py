"""The read side of the use cases: what the API and the CLI show, and who may see it.

Each query checks the account first (another account's id is as unknown as a made-up one) and
costs a fixed number of store calls whatever the page size: a page of deliveries reads the page,
then the attempts of all of it at once (``attempts_of``), never one query per row.

Ids and cursors are checked against the alphabet of the ids this service hands out (and that
``evt_`` ids given by callers must use) before any query: an id with a NUL, a non-ASCII letter or
1,000 characters cannot exist, so it is NotFound (a cursor: a ValidationError) without asking a
database that might choke on it (PostgreSQL refuses NUL in text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from attrs import frozen

from ...core.delivery import DeliveryStatus
from ...core.endpoint import EndpointStatus
from ...core.errors import NotFound, ValidationError
from ...core.ports import Storage
from ...core.views import AttemptView, DeliveryView, EndpointView, EventView

__all__ = ["DeliveryRecord", "EventRecord", "Page", "Queries", "is_id"]

T = TypeVar("T")

#: Every id: ``wh_``/``dlv_``/``evt_`` and a ULID, or a caller's ``evt_…`` id (up to 128 characters).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")

#: The most deliveries ``event()`` shows: one per subscribed endpoint, so far above any real fan-out.
MAX_EVENT_DELIVERIES = 1000


@frozen
class Page(Generic[T]):
    """One page of a list; ``next_cursor`` (the last item's id) fetches the next, None at the end."""

    items: tuple[T, ...]
    next_cursor: str | None = None


@frozen
class DeliveryRecord:
    """A delivery with its attempts, oldest first."""

    view: DeliveryView
    attempts: tuple[AttemptView, ...]


@frozen
class EventRecord:
    """A published event with its deliveries (newest first)."""

    view: EventView
    deliveries: tuple[DeliveryRecord, ...]


class Queries:
    """The read-side use cases over the store (``WebhookService.queries``)."""

    def __init__(self, store: Storage) -> None:
        self._store = store

    async def endpoint(self, account_id: str, endpoint_id: str) -> EndpointView:
        """An endpoint of the account; NotFound for unknown, deleted or other accounts' ids."""
        view = await self._store.endpoint(endpoint_id) if is_id(endpoint_id) else None
        if (
            view is None
            or view.endpoint.account_id != account_id
            or view.endpoint.status is EndpointStatus.DELETED
        ):
            raise NotFound("webhook", endpoint_id)
        return view

    async def endpoints(
        self, account_id: str, *, after: str | None = None, limit: int = 50
    ) -> Page[EndpointView]:
        """The account's live endpoints, oldest first, ``limit`` at a time after the cursor."""
        views = await self._store.list_endpoints(account_id, after=_cursor(after), limit=limit + 1)
        return _page(views, limit, lambda view: view.endpoint.endpoint_id)

    async def event(self, account_id: str, event_id: str) -> EventView:
        """An event of the account; NotFound otherwise."""
        view = await self._store.event(account_id, event_id) if is_id(event_id) else None
        if view is None:
            raise NotFound("event", event_id)
        return view

    async def event_record(self, account_id: str, event_id: str) -> EventRecord:
        """An event with each of its deliveries and their attempts: three store calls."""
        view = await self.event(account_id, event_id)
        views = await self._store.deliveries(account_id, event_id=event_id, limit=MAX_EVENT_DELIVERIES)
        return EventRecord(view, await self._with_attempts(views))

    async def delivery(self, account_id: str, delivery_id: str) -> DeliveryView:
        """A delivery of the account; NotFound otherwise."""
        view = await self._store.delivery(delivery_id) if is_id(delivery_id) else None
        if view is None or view.delivery.account_id != account_id:
            raise NotFound("delivery", delivery_id)
        return view

    async def delivery_record(self, account_id: str, delivery_id: str) -> DeliveryRecord:
        """A delivery of the account with its attempts."""
        view = await self.delivery(account_id, delivery_id)
        return DeliveryRecord(view, tuple(await self._store.attempts(delivery_id)))

    async def deliveries(
        self,
        account_id: str,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        statuses: Collection[DeliveryStatus] | None = None,
        before: str | None = None,
        limit: int = 20,
    ) -> Page[DeliveryRecord]:
        """A page of the account's delivery log, newest first, with every attempt: one query for
        the page and one for all its attempts (plus one for the endpoint when one is given).
        ``event_id`` only narrows the page: an event with no deliveries (or none yet) gives none."""
        if endpoint_id is not None:
            await self.endpoint(account_id, endpoint_id)
        if event_id is not None and not is_id(event_id):
            return Page(())
        views = await self._store.deliveries(
            account_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            statuses=statuses,
            before=_cursor(before),
            limit=limit + 1,
        )
        page = _page(views, limit, lambda view: view.delivery.delivery_id)
        return Page(await self._with_attempts(page.items), page.next_cursor)

    async def _with_attempts(self, views: Collection[DeliveryView]) -> tuple[DeliveryRecord, ...]:
        found = await self._store.attempts_of([view.delivery.delivery_id for view in views])
        return tuple(DeliveryRecord(view, tuple(found.get(view.delivery.delivery_id, ()))) for view in views)


def _page(views: Collection[T], limit: int, key: Callable[[T], str]) -> Page[T]:
    items = tuple(views)[:limit]
    return Page(items, key(items[-1]) if len(views) > limit and items else None)


def is_id(value: str) -> bool:
    """Whether ``value`` is in the alphabet of ids (so that it may exist)."""
    return _ID.fullmatch(value) is not None


def _cursor(cursor: str | None) -> str | None:
    if cursor is not None and not is_id(cursor):
        raise ValidationError("cursor", "not a cursor this API gave: pass nextCursor of the previous page")
    return cursor
