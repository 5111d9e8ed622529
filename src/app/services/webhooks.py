"""Use cases over the ports: manage endpoints, publish events, redeliver.

Each use case loads state from a read model (which carries its stream version), decides with the
pure aggregate functions, and appends with that version as the expected one, so that a
concurrent change makes the append fail instead of being overwritten; it is then retried once
from fresh state.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from attrs import field, frozen

from ...core import delivery as dlv
from ...core import endpoint as ep
from ...core.catalog import check_subscribable_type
from ...core.delivery import DeliveryStatus
from ...core.errors import ConcurrencyConflict, NotFound
from ...core.operational import DEFAULT_FAILING_COOLDOWN
from ...core.ports import Clock, IdGenerator, Notices, RandomSource, Storage, StreamAppend
from ...core.retry import RetryPolicy
from ...core.samples import SAMPLE_DATA
from ...core.views import DeliveryView, EndpointView, EventView
from . import publishing
from .notices import NoticeBoard
from .operational import OperationalEvents, append_with_notices
from .publishing import DuplicateEventConflict, NewEvent, PublishResult
from .queries import Queries

__all__ = [
    "ServicePorts",
    "DuplicateEventConflict",
    "NewEvent",
    "PublishResult",
    "ServiceSettings",
    "WebhookService",
    "generate_secret",
]

_BATCH = 500
T = TypeVar("T")


@frozen
class ServiceSettings:
    """The knobs the use cases read."""

    endpoint_rules: ep.EndpointRules = field(factory=ep.EndpointRules)
    retry: RetryPolicy = field(factory=RetryPolicy)
    rotation_grace: timedelta = timedelta(hours=24)
    #: At most one ``webhook.failing`` notice per webhook in this time (ADR 0017).
    failing_notice_cooldown: timedelta = DEFAULT_FAILING_COOLDOWN


def generate_secret(random: RandomSource) -> str:
    """A strong secret in the Standard Webhooks form: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(random.token_bytes(24)).decode("ascii")


@frozen
class ServicePorts:
    """What a WebhookService was built over (``WebhookService.ports``)."""

    store: Storage
    clock: Clock
    ids: IdGenerator
    random: RandomSource
    settings: ServiceSettings
    notices: Notices


class WebhookService:
    """The application service: every command of the API and CLI goes through here."""

    def __init__(
        self,
        store: Storage,
        clock: Clock,
        ids: IdGenerator,
        random: RandomSource,
        settings: ServiceSettings | None = None,
        notices: Notices | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ids = ids
        self._random = random
        self._settings = settings or ServiceSettings()
        #: Where new work and endpoint changes are announced (this process's dispatcher, and
        #: through it the other processes); a board nobody listens to by default.
        self._notices: Notices = notices if notices is not None else NoticeBoard()
        #: The read side: what the API and the CLI show, over the same store.
        self.queries = Queries(store)

    @property
    def ports(self) -> ServicePorts:
        """The ports and settings the service was built over: for wiring a dispatcher beside it
        (``Dispatcher.beside``) and for the use-case modules (``publishing``), not for reading
        around the use cases."""
        return ServicePorts(self._store, self._clock, self._ids, self._random, self._settings, self._notices)

    def _on_due(self) -> None:
        self._notices.deliveries_due()

    def _on_endpoint_changed(self, endpoint_id: str) -> None:
        self._notices.endpoint_changed(endpoint_id)

    # --- endpoints --------------------------------------------------------------------------

    async def register_endpoint(
        self,
        account_id: str,
        url: str,
        event_types: Sequence[str],
        secret: str | None = None,
        description: str = "",
        standard_webhooks: bool = False,
        *,
        ordered: bool = False,
        rate_limit: int | None = None,
        rate_limit_burst: int = 0,
        circuit_breaker_threshold: int | None = None,
    ) -> EndpointView:
        """Create an endpoint; without a ``secret`` a strong one is generated. ``ordered``:
        its deliveries go one at a time, in publish order (ADR 0016)."""
        endpoint_id = self._ids.new_id("wh")
        command = ep.Register(
            endpoint_id=endpoint_id,
            account_id=account_id,
            url=url,
            event_types=event_types,
            secret=secret if secret is not None else generate_secret(self._random),
            description=description,
            standard_webhooks=standard_webhooks,
            now=self._clock.now(),
            ordered=ordered,
            rate_limit=rate_limit,
            rate_limit_burst=rate_limit_burst,
            circuit_breaker_threshold=circuit_breaker_threshold,
        )
        events = ep.decide(command, ep.initial_state(), self._settings.endpoint_rules)
        await self._store.append(StreamAppend(endpoint_id, 0, tuple(events)))
        return EndpointView(ep.fold(events), version=len(events))

    async def endpoint(self, account_id: str, endpoint_id: str) -> EndpointView:
        """An endpoint of the account; NotFound for unknown, deleted or other accounts' ids."""
        return await self.queries.endpoint(account_id, endpoint_id)

    async def update_endpoint(
        self,
        account_id: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
        standard_webhooks: bool | None = None,
        ordered: bool | None = None,
        rate_limit: int | None = None,
        rate_limit_burst: int | None = None,
        circuit_breaker_threshold: int | None = None,
    ) -> EndpointView:
        """Change the given fields; None leaves one as it is, ``endpoint.OFF`` turns the rate
        limit or the circuit breaker off. Switching ``ordered`` applies to deliveries scheduled
        from then on; those already in the endpoint's line keep their places (ADR 0016)."""
        return await self._endpoint_command(
            account_id,
            endpoint_id,
            lambda now: ep.Update(
                now,
                url,
                event_types,
                description,
                standard_webhooks,
                ordered=ordered,
                rate_limit=rate_limit,
                rate_limit_burst=rate_limit_burst,
                circuit_breaker_threshold=circuit_breaker_threshold,
            ),
        )

    async def rotate_secret(
        self, account_id: str, endpoint_id: str, secret: str | None = None, grace: timedelta | None = None
    ) -> EndpointView:
        """Replace the signing secret; the old one keeps signing alongside for ``grace``."""
        new_secret = secret if secret is not None else generate_secret(self._random)
        grace = self._settings.rotation_grace if grace is None else grace
        return await self._endpoint_command(
            account_id, endpoint_id, lambda now: ep.RotateSecret(new_secret, grace, now)
        )

    async def disable_endpoint(self, account_id: str, endpoint_id: str) -> EndpointView:
        """Stop attempting deliveries; new and pending ones are held until it is enabled. A
        ``webhook.disabled`` notice goes to the account's other webhooks subscribed to it."""
        view = await self._endpoint_command(account_id, endpoint_id, ep.Disable)
        self._on_due()  # the notice's deliveries
        return view

    async def enable_endpoint(self, account_id: str, endpoint_id: str) -> EndpointView:
        """Resume deliveries; every held delivery becomes due now."""
        view = await self._endpoint_command(account_id, endpoint_id, ep.Enable)
        await self._for_each_delivery(account_id, endpoint_id, (DeliveryStatus.HELD,), dlv.Release)
        self._on_due()
        return view

    async def delete_endpoint(self, account_id: str, endpoint_id: str) -> None:
        """Delete the endpoint; deliveries not yet finished are cancelled."""
        await self._endpoint_command(account_id, endpoint_id, ep.Delete)
        unfinished = (DeliveryStatus.SCHEDULED, DeliveryStatus.RETRYING, DeliveryStatus.HELD)
        await self._for_each_delivery(
            account_id, endpoint_id, unfinished, lambda now: dlv.Cancel("endpoint deleted", now)
        )

    async def _endpoint_command(
        self, account_id: str, endpoint_id: str, make: Callable[[datetime], ep.EndpointCommand]
    ) -> EndpointView:
        closed = False

        async def attempt() -> EndpointView:
            nonlocal closed
            view = await self.endpoint(account_id, endpoint_id)
            events = ep.decide(make(self._clock.now()), view.endpoint, self._settings.endpoint_rules)
            if events:
                notices = await OperationalEvents.over(self.ports).of_endpoint(view, events)
                append = StreamAppend(endpoint_id, view.version, tuple(events))
                await append_with_notices(self._store, [append], notices)
            after = ep.fold(events, view.endpoint)
            closed = (
                view.endpoint.circuit_breaker_opened_at is not None
                and after.circuit_breaker_opened_at is None
            )
            return EndpointView(after, view.version + len(events), view.failing_since, view.failures)

        view = await _retry_on_conflict(attempt)
        if closed:  # turned off, or enabled afresh: what waited behind the breaker is due (ADR 0015)
            await self._store.wake(endpoint_id, self._clock.now())
            self._on_due()
        self._on_endpoint_changed(endpoint_id)
        return view

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, account_id: str, new: NewEvent, *, test: bool = False) -> PublishResult:
        """Store the event and schedule a delivery to every endpoint subscribed to its type,
        in one atomic append. Publishing the same ``id`` twice stores and delivers it once."""
        [result] = await publishing.publish_batch(self, account_id, [new], test=test)
        return result

    async def publish_batch(self, account_id: str, events: Sequence[NewEvent]) -> list[PublishResult]:
        """Publish every event of ``events`` in one transaction (all or none are stored); a
        result per event, in order. Idempotent per event id, as ``publish``."""
        return await publishing.publish_batch(self, account_id, events, indexed=True)

    def publish_within(
        self, outbox: publishing.Outbox, account_id: str, events: Sequence[NewEvent]
    ) -> list[PublishResult]:
        """Publish ``events`` inside the caller's open transaction (the transactional outbox):
        delivered if, and only if, that transaction commits. Synchronous, like the caller."""
        return publishing.publish_within(self, outbox, account_id, events)

    async def send_test(self, account_id: str, endpoint_id: str, event_type: str) -> PublishResult:
        """Send a sample event of ``event_type`` to one endpoint, marked as a test."""
        view = await self.endpoint(account_id, endpoint_id)
        checked = check_subscribable_type(event_type).value
        sample = NewEvent(type=checked, data=SAMPLE_DATA[checked], id=self._ids.new_id("evt_test"))
        [result] = await publishing.publish_batch(self, account_id, [sample], test=True, only=view)
        return result

    async def event(self, account_id: str, event_id: str) -> EventView:
        return await self.queries.event(account_id, event_id)

    # --- deliveries -------------------------------------------------------------------------

    async def delivery(self, account_id: str, delivery_id: str) -> DeliveryView:
        return await self.queries.delivery(account_id, delivery_id)

    async def redeliver(self, account_id: str, delivery_id: str) -> DeliveryView:
        """Send a finished delivery again, as a fresh attempt sequence starting now."""

        async def attempt() -> DeliveryView:
            view = await self.delivery(account_id, delivery_id)
            endpoint = await self._store.endpoint(view.delivery.endpoint_id)
            if endpoint is None or endpoint.endpoint.status is ep.EndpointStatus.DELETED:
                raise NotFound("webhook", view.delivery.endpoint_id)
            # To an ordered endpoint, it joins the back of the line (ADR 0016).
            command = dlv.Redeliver(self._clock.now(), endpoint.endpoint.ordered)
            events = dlv.decide(command, view.delivery, self._settings.retry)
            await self._store.append(StreamAppend(delivery_id, view.version, tuple(events)))
            return view

        await _retry_on_conflict(attempt)
        self._on_due()
        return await self.delivery(account_id, delivery_id)

    async def recover(self, account_id: str, endpoint_id: str, since: datetime) -> int:
        """Redeliver every delivery to the endpoint that failed since ``since``; returns how many.
        To an ordered endpoint they join its line oldest first, behind what is there (ADR 0016)."""
        view = await self.endpoint(account_id, endpoint_id)
        if view.endpoint.ordered:
            count = await self._recover_in_order(account_id, endpoint_id, since)
        else:
            failed = (DeliveryStatus.FAILED,)
            count = await self._for_each_delivery(account_id, endpoint_id, failed, dlv.Redeliver, since=since)
        self._on_due()
        return count

    async def _for_each_delivery(
        self,
        account_id: str,
        endpoint_id: str,
        statuses: tuple[DeliveryStatus, ...],
        make: Callable[[datetime], dlv.DeliveryCommand],
        since: datetime | None = None,
    ) -> int:
        """Apply a command to every delivery of an endpoint in ``statuses``, a batch at a time.
        The command moves each delivery out of ``statuses``, so the next query finds the rest."""
        done = 0
        skipped: set[str] = set()
        while True:
            views = await self._store.deliveries(
                account_id,
                endpoint_id=endpoint_id,
                statuses=statuses,
                since=since,
                limit=_BATCH + len(skipped),
            )
            views = [v for v in views if v.delivery.delivery_id not in skipped]
            if not views:
                return done
            now = self._clock.now()
            appends = []
            for view in views:
                events = dlv.decide(make(now), view.delivery, self._settings.retry)
                if events:
                    appends.append(StreamAppend(view.delivery.delivery_id, view.version, tuple(events)))
                else:
                    skipped.add(view.delivery.delivery_id)
            # One that moved meanwhile is left out; the next query returns it at its new version,
            # if it still qualifies.
            done += await self._append_each(appends)

    async def _recover_in_order(self, account_id: str, endpoint_id: str, since: datetime) -> int:
        """``recover`` for an ordered endpoint: the failed deliveries join its line in the order
        they were created (the log is read newest first, so they are all gathered first), in
        batches of appends; one that moved meanwhile (a version conflict) is left as it is."""
        found: list[DeliveryView] = []
        before: str | None = None
        while True:
            page = await self._store.deliveries(
                account_id,
                endpoint_id=endpoint_id,
                statuses=(DeliveryStatus.FAILED,),
                since=since,
                before=before,
                limit=_BATCH,
            )
            if not page:
                break
            found += page
            before = page[-1].delivery.delivery_id
        done = 0
        found.reverse()
        for start in range(0, len(found), _BATCH):
            now = self._clock.now()
            appends = [
                StreamAppend(view.delivery.delivery_id, view.version, tuple(events))
                for view in found[start : start + _BATCH]
                if (events := dlv.decide(dlv.Redeliver(now, True), view.delivery, self._settings.retry))
            ]
            done += await self._append_each(appends)
        return done

    async def _append_each(self, appends: list[StreamAppend]) -> int:
        """Append a batch of delivery commands in one transaction; if a worker recorded an
        attempt to one of them meanwhile (a version conflict), one by one, leaving that one
        out. Returns how many were appended."""
        try:
            await self._store.append(*appends)
            return len(appends)
        except ConcurrencyConflict:
            done = 0
            for append in appends:
                try:
                    await self._store.append(append)
                    done += 1
                except ConcurrencyConflict:
                    continue
            return done


async def _retry_on_conflict(attempt: Callable[[], Awaitable[T]]) -> T:
    try:
        return await attempt()
    except ConcurrencyConflict:
        return await attempt()
