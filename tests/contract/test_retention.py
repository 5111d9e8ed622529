"""The History port's contract (retention, ADR 0018): finished history goes, streams and rows
together; nothing that is not final ever does. Every test runs on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, cast

from test_storage import ACCOUNT, LEASE, T0, at, failed, publish, record, register, succeeded

from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.events import (
    DeliveryCancelled,
    DeliveryFailed,
    EndpointDeleted,
    RedeliveryRequested,
    event_stream,
)
from attribution_webhooks.core.ports import History, Storage, StreamAppend
from attribution_webhooks.core.retention import PurgeReport

DAY = timedelta(days=1)
NOW = T0 + 40 * DAY
HORIZON = NOW - 30 * DAY  # a 30-day retention age


class HistoryStorage(Storage, History, Protocol):
    """Every store implements both ports."""


def _history(store: Storage) -> HistoryStorage:
    assert callable(getattr(store, "purge_events", None))
    return cast(HistoryStorage, store)


async def _finished_world(store: Storage) -> None:
    """Three old events: one delivered, one failed for good, one cancelled; one old event whose
    delivery is still retrying; one old held one; one recent delivered one."""
    await register(store, "wh_1", "wh_2")
    await publish(store, "evt_ok", {"dlv_ok": "wh_1"})
    await record(store, "dlv_ok", succeeded("dlv_ok", "wh_1", 1, at(1)))
    await publish(store, "evt_failed", {"dlv_failed": "wh_1"})
    await record(
        store,
        "dlv_failed",
        failed("dlv_failed", "wh_1", 1, at(2)),
        DeliveryFailed("dlv_failed", "wh_1", 1, at(2)),
    )
    await publish(store, "evt_cancelled", {"dlv_cancelled": "wh_2"})
    await record(store, "dlv_cancelled", DeliveryCancelled("dlv_cancelled", "endpoint deleted", at(3)))
    await publish(store, "evt_pending", {"dlv_pending": "wh_1", "dlv_pending_ok": "wh_2"})
    await record(store, "dlv_pending_ok", succeeded("dlv_pending_ok", "wh_2", 1, at(4)))
    await publish(store, "evt_held", {"dlv_held": "wh_2"}, held=True)
    await publish(store, "evt_new", {"dlv_new": "wh_1"}, when=NOW - DAY)
    await record(store, "dlv_new", succeeded("dlv_new", "wh_1", 1, NOW - DAY))


async def _purge_all(store: HistoryStorage, limit: int = 2) -> PurgeReport:
    """Purge pass by pass, ``limit`` events a batch, until a pass ends; the totals."""
    totals = PurgeReport()
    after = None
    while True:
        report = await store.purge_events(HORIZON, NOW, after, limit)
        totals = PurgeReport(
            totals.events + report.events,
            totals.deliveries + report.deliveries,
            totals.attempts + report.attempts,
        )
        after = report.cursor
        if after is None:
            return totals


async def test_only_finished_old_history_is_purged(store: Storage) -> None:
    """Old events whose deliveries are all final go, with their deliveries and attempts; an event
    with a pending or held delivery, and a recent one, stay whole."""
    history = _history(store)
    await _finished_world(store)
    totals = await _purge_all(history)
    assert (totals.events, totals.deliveries, totals.attempts) == (3, 3, 2)
    for event_id, delivery_id in (
        ("evt_ok", "dlv_ok"),
        ("evt_failed", "dlv_failed"),
        ("evt_cancelled", "dlv_cancelled"),
    ):
        assert await store.event(ACCOUNT, event_id) is None
        assert await store.delivery(delivery_id) is None
        assert await store.attempts(delivery_id) == []
        assert await store.read(delivery_id) == []
        assert await store.read(event_stream(ACCOUNT, event_id)) == []
        assert await history.purged_event(ACCOUNT, event_id) == (T0, NOW)
    for event_id in ("evt_pending", "evt_held", "evt_new"):
        assert await store.event(ACCOUNT, event_id) is not None
        assert await history.purged_event(ACCOUNT, event_id) is None
    kept = await store.deliveries(ACCOUNT, limit=100)
    assert sorted(v.delivery.delivery_id for v in kept) == [
        "dlv_held",
        "dlv_new",
        "dlv_pending",
        "dlv_pending_ok",
    ]
    assert len(await store.attempts("dlv_pending_ok")) == 1
    remaining = {r.stream_id for r in await store.read_all(limit=1000)}
    assert not remaining & {"dlv_ok", "dlv_failed", "dlv_cancelled", event_stream(ACCOUNT, "evt_ok")}
    assert {"wh_1", "wh_2", "dlv_pending", "dlv_held", "dlv_new"} <= remaining


async def test_purge_leaves_the_queue_and_appends_working(store: Storage) -> None:
    """After a purge the pending delivery is still claimed, and new events take new positions."""
    history = _history(store)
    await _finished_world(store)
    last = (await store.read_all(limit=1000))[-1].position
    await _purge_all(history)
    claimed = await store.claim(NOW, 10, LEASE)
    assert [due.delivery.delivery_id for due in claimed] == ["dlv_pending"]
    await publish(store, "evt_after", {"dlv_after": "wh_1"}, when=NOW)
    positions = [r.position for r in await store.read_all(after=last, limit=10)]
    assert positions
    assert min(positions) > last
    assert await store.next_due() is not None


async def test_a_recent_redelivery_keeps_an_old_event(store: Storage) -> None:
    """A delivery redelivered after the horizon is recent history: its event stays."""
    history = _history(store)
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"})
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 1, at(1)))
    await record(store, "dlv_1", RedeliveryRequested("dlv_1", NOW - DAY))
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 2, NOW - DAY))
    report = await history.purge_events(HORIZON, NOW, None, 10)
    assert report.events == 0
    view = await store.delivery("dlv_1")
    assert view is not None
    assert view.delivery.status is DeliveryStatus.SUCCEEDED


async def test_the_newest_stream_of_the_log_is_kept(store: Storage) -> None:
    """Purging never removes the log's newest event, so positions are never given twice."""
    history = _history(store)
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"})
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 1, at(1)))
    assert (await history.purge_events(HORIZON, NOW, None, 10)).events == 0
    await publish(store, "evt_2", {}, when=NOW)
    assert (await history.purge_events(HORIZON, NOW, None, 10)).events == 1


async def test_the_cursor_walks_past_events_that_must_stay(store: Storage) -> None:
    """A pass goes on past old events that cannot go yet, batch by batch, to the horizon."""
    history = _history(store)
    await register(store, "wh_1")
    for n in range(5):
        await publish(store, f"evt_stuck_{n}", {f"dlv_stuck_{n}": "wh_1"}, when=at(n))
    await publish(store, "evt_done", {"dlv_done": "wh_1"}, when=at(10))
    await record(store, "dlv_done", succeeded("dlv_done", "wh_1", 1, at(11)))
    await publish(store, "evt_last", {}, when=NOW)
    first = await history.purge_events(HORIZON, NOW, None, 3)
    assert first.events == 0
    assert first.cursor is not None
    second = await history.purge_events(HORIZON, NOW, first.cursor, 3)
    assert second.events == 1
    assert second.cursor is not None
    third = await history.purge_events(HORIZON, NOW, second.cursor, 3)
    assert third == PurgeReport()


async def test_a_deleted_endpoint_goes_after_its_deliveries(store: Storage) -> None:
    """A deleted endpoint's stream and row go once it was deleted before the horizon and no
    delivery to it is left; a live endpoint and a recently deleted one stay."""
    history = _history(store)
    await register(store, "wh_gone", "wh_live", "wh_recent")
    await store.append(StreamAppend("wh_gone", 1, (EndpointDeleted("wh_gone", at(5)),)))
    await store.append(StreamAppend("wh_recent", 1, (EndpointDeleted("wh_recent", NOW - DAY),)))
    await publish(store, "evt_1", {"dlv_1": "wh_gone"})
    await record(store, "dlv_1", DeliveryCancelled("dlv_1", "endpoint deleted", at(5)))
    await publish(store, "evt_last", {}, when=NOW)
    assert (await history.purge_deleted(HORIZON, 10)).endpoints == 0  # a delivery is left
    await _purge_all(history)
    assert (await history.purge_deleted(HORIZON, 10)).endpoints == 1
    assert await store.endpoint("wh_gone") is None
    assert await store.read("wh_gone") == []
    assert await store.endpoint("wh_live") is not None
    assert await store.endpoint("wh_recent") is not None


async def test_tombstones_expire_after_the_retention_age(store: Storage) -> None:
    """A tombstone is kept for the retention age after the purge, then removed."""
    history = _history(store)
    await register(store, "wh_1")
    await publish(store, "evt_1", {})
    await publish(store, "evt_last", {}, when=NOW)
    await history.purge_events(HORIZON, NOW, None, 10)
    assert await history.purged_event(ACCOUNT, "evt_1") == (T0, NOW)
    assert (await history.purge_deleted(HORIZON, 10)).tombstones == 0
    later = NOW + 31 * DAY
    assert (await history.purge_deleted(later - 30 * DAY, 10)).tombstones == 1
    assert await history.purged_event(ACCOUNT, "evt_1") is None


async def test_a_batch_stops_taking_events_at_its_delivery_limit(store: Storage) -> None:
    """With a fan-out, a batch takes events until it holds ``limit`` deliveries; the cursor goes
    on from the last event it took, so the next batch removes the rest."""
    history = _history(store)
    await register(store, "wh_1", "wh_2", "wh_3")
    for n in range(3):
        targets = {f"dlv_{n}_{e}": f"wh_{e}" for e in (1, 2, 3)}
        await publish(store, f"evt_{n}", targets, when=at(n))
        for delivery_id, endpoint_id in targets.items():
            await record(store, delivery_id, succeeded(delivery_id, endpoint_id, 1, at(n + 1)))
    await publish(store, "evt_last", {}, when=NOW)
    first = await history.purge_events(HORIZON, NOW, None, 4)
    assert (first.events, first.deliveries) == (2, 6)
    assert first.cursor is not None
    assert first.cursor[2] == "evt_1"
    second = await history.purge_events(HORIZON, NOW, first.cursor, 4)
    assert (second.events, second.deliveries, second.cursor) == (1, 3, None)
