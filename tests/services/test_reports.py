"""The dashboard's read-side use cases over the in-memory store: headers as sent, the log, tenancy."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest

from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.app.services import NewEvent, ServiceSettings, WebhookService
from attribution_webhooks.app.services.reports import LogFilter, Reports
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.errors import NotFound
from attribution_webhooks.core.events import AttemptFailed
from attribution_webhooks.core.ports import StreamAppend
from attribution_webhooks.testing import FakeClock, SeededRandom, SequentialIds

T = TypeVar("T")
URL = "https://yourdomain.com/webhooks/attribution"
OLD, NEW = "s3cret-old-s3cret", "s3cret-new-s3cret"


def run(test: Callable[[Reports, FakeClock], Awaitable[T]]) -> T:
    clock = FakeClock()
    service = WebhookService(MemoryStore(), clock, SequentialIds(), SeededRandom(1), ServiceSettings())
    return asyncio.run(test(Reports(service, HmacSigner(), "agent/1"), clock))


async def _fail_attempt(
    reports: Reports, delivery_id: str, endpoint_id: str, number: int, clock: FakeClock
) -> None:
    view = await reports.store.delivery(delivery_id)
    assert view is not None
    failed = AttemptFailed(delivery_id, endpoint_id, number, clock.now(), 5.0, 503, None, "HTTP 503", "busy")
    await reports.store.append(StreamAppend(delivery_id, view.version, (failed,)))


def _hex(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def test_headers_are_rebuilt_as_sent_even_after_a_rotation() -> None:
    """An attempt before a rotation shows the old secret's signature; one within the grace, both."""

    async def scenario(reports: Reports, clock: FakeClock) -> None:
        service = reports.service
        webhook = (await service.register_endpoint("acct_1", URL, ["deal.attributed"], OLD)).endpoint
        published = await service.publish("acct_1", NewEvent("deal.attributed", {"dealId": "d"}))
        delivery_id = published.delivery_ids[0]
        clock.advance(timedelta(seconds=1))
        await _fail_attempt(reports, delivery_id, webhook.endpoint_id, 1, clock)
        clock.advance(timedelta(seconds=10))
        await service.rotate_secret("acct_1", webhook.endpoint_id, NEW, timedelta(hours=1))
        clock.advance(timedelta(seconds=10))
        await _fail_attempt(reports, delivery_id, webhook.endpoint_id, 2, clock)

        view = await service.delivery("acct_1", delivery_id)
        body = (await service.event("acct_1", published.event_id)).body
        attempts = await reports.attempts("acct_1", delivery_id)
        first, second = (dict(h) for h in await reports.sent_headers(view, attempts, body))
        assert first["X-Attribution-Signature"] == _hex(OLD, body)
        assert "X-Attribution-Signature-Previous" not in first
        assert (first["X-Attribution-Attempt"], first["User-Agent"]) == ("1", "agent/1")
        assert second["X-Attribution-Signature"] == _hex(NEW, body)
        assert second["X-Attribution-Signature-Previous"] == _hex(OLD, body)
        assert second["X-Attribution-Timestamp"] == str(int(attempts[1].started_at.timestamp()))

    run(scenario)


def test_another_accounts_ids_are_not_found() -> None:
    """The log of another account's webhook, and another account's delivery's attempts, are NotFound."""

    async def scenario(reports: Reports, _: FakeClock) -> None:
        service = reports.service
        webhook = (await service.register_endpoint("acct_1", URL, ["deal.attributed"])).endpoint
        published = await service.publish("acct_1", NewEvent("deal.attributed", {"dealId": "d"}))
        with pytest.raises(NotFound):
            await reports.log("acct_2", LogFilter(endpoint_id=webhook.endpoint_id), None, 10)
        with pytest.raises(NotFound):
            await reports.attempts("acct_2", published.delivery_ids[0])
        assert (await reports.log("acct_2", LogFilter(), None, 10)).rows == []
        assert await reports.webhooks("acct_2") == []

    run(scenario)


def test_the_log_pages_newest_first_with_filters() -> None:
    """A page of ``size`` newest first, a cursor to the rest, and filters by status and type."""

    async def scenario(reports: Reports, clock: FakeClock) -> None:
        service = reports.service
        await service.register_endpoint("acct_1", URL, ["deal.attributed", "partner.created"])
        deals = [await service.publish("acct_1", NewEvent("deal.attributed", {"n": i})) for i in range(3)]
        await service.publish("acct_1", NewEvent("partner.created", {"id": "p"}))
        first = await reports.log("acct_1", LogFilter(), None, 3)
        assert len(first.rows) == 3
        assert first.next_cursor == first.rows[-1].delivery.delivery_id
        rest = await reports.log("acct_1", LogFilter(), first.next_cursor, 3)
        assert [r.delivery.delivery_id for r in rest.rows] == [deals[0].delivery_ids[0]]
        assert rest.next_cursor is None
        only_deals = await reports.log("acct_1", LogFilter(event_type="deal.attributed"), None, 10)
        assert len(only_deals.rows) == 3
        none = LogFilter(statuses=(DeliveryStatus.FAILED,))
        assert (await reports.log("acct_1", none, None, 10)).rows == []

    run(scenario)
