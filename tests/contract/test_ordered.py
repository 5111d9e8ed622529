"""Ordered delivery's queue (ADR 0016), on every store: of an ordered endpoint's line only the
head is claimable, and only while it is due and not leased; the next one is claimable once the
head is finished."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs
from test_storage import ACCOUNT, T0, at, failed, record, registered, succeeded

from attribution_webhooks.core.events import (
    DeliveryCancelled,
    DeliveryFailed,
    DeliveryHeld,
    DeliveryReleased,
    DeliveryScheduled,
    EventPublished,
    RedeliveryRequested,
    RetryScheduled,
    event_stream,
)
from attribution_webhooks.core.ports import Storage, StreamAppend
from attribution_webhooks.core.views import DueDelivery, QueueStats

LEASE = timedelta(seconds=60)


async def register(store: Storage, endpoint_id: str, ordered: bool) -> None:
    await store.append(
        StreamAppend(endpoint_id, 0, (attrs.evolve(registered(endpoint_id), ordered=ordered),))
    )


async def publish(
    store: Storage,
    event_id: str,
    targets: dict[str, str],
    *,
    ordered: bool,
    when: datetime = T0,
    held: bool = False,
) -> None:
    """``event_id`` with a delivery per ``{delivery_id: endpoint_id}``, in line when ``ordered``."""
    published = EventPublished(event_id, ACCOUNT, "deal.attributed", f'{{"id":"{event_id}"}}', when, when)
    appends = [StreamAppend(event_stream(ACCOUNT, event_id), 0, (published,))]
    for delivery_id, endpoint_id in targets.items():
        scheduled = DeliveryScheduled(
            delivery_id, ACCOUNT, endpoint_id, event_id, "deal.attributed", when, held=held, ordered=ordered
        )
        appends.append(StreamAppend(delivery_id, 0, (scheduled,)))
    await store.append(*appends)


async def line_of_three(store: Storage, concurrent: bool = True) -> None:
    """wh_o (ordered) gets dlv_1, dlv_2, dlv_3 in that order; wh_c (concurrent) gets dlv_c1..3."""
    await register(store, "wh_o", True)
    await register(store, "wh_c", False)
    for n in (1, 2, 3):
        await publish(store, f"evt_{n}", {f"dlv_{n}": "wh_o"}, ordered=True)
        if concurrent:
            await publish(store, f"evt_c{n}", {f"dlv_c{n}": "wh_c"}, ordered=False)


def ids(claimed: object) -> list[str]:
    assert isinstance(claimed, list | tuple)
    return [due.delivery.delivery_id for due in claimed if isinstance(due, DueDelivery)]


async def test_only_the_head_of_a_line_is_claimed(store: Storage) -> None:
    """Three due deliveries in line: one claim takes the head only, beside every concurrent one."""
    await line_of_three(store)
    assert ids(await store.claim(T0, 10, LEASE)) == ["dlv_1", "dlv_c1", "dlv_c2", "dlv_c3"]
    assert await store.next_due() == T0 + LEASE


async def test_a_leased_head_holds_the_line_until_its_lease_ends(store: Storage) -> None:
    """While the head is leased nothing of its line is claimable; when the lease runs out, the
    head again (its worker died), never the one behind it."""
    await line_of_three(store)
    await store.claim(T0, 10, LEASE)
    assert ids(await store.claim(at(30), 10, LEASE)) == []
    assert ids(await store.claim(T0 + LEASE, 10, LEASE)) == ["dlv_1", "dlv_c1", "dlv_c2", "dlv_c3"]


async def test_the_line_moves_when_the_head_succeeds(store: Storage) -> None:
    """Recording the head's success makes the next one claimable, due since it was published."""
    await line_of_three(store, concurrent=False)
    await store.claim(T0, 10, LEASE)
    await record(store, "dlv_1", succeeded("dlv_1", "wh_o", 1, at(1)))
    assert await store.next_due() == T0
    (second,) = await store.claim(at(2), 10, LEASE)
    assert (second.delivery.delivery_id, second.delivery.due_at, second.attempt) == ("dlv_2", T0, 1)
    await record(store, "dlv_2", succeeded("dlv_2", "wh_o", 1, at(3)))
    assert ids(await store.claim(at(4), 10, LEASE)) == ["dlv_3"]


async def test_a_failing_head_blocks_the_line_until_it_exhausts_its_retries(store: Storage) -> None:
    """A retrying head is the only one claimed at its retry time; once it has failed for good,
    the next one goes."""
    await line_of_three(store, concurrent=False)
    await store.claim(T0, 10, LEASE)
    await record(store, "dlv_1", failed("dlv_1", "wh_o", 1, at(1)), RetryScheduled("dlv_1", 2, at(61), at(1)))
    assert ids(await store.claim(at(30), 10, LEASE)) == []
    assert await store.next_due() == at(61)
    assert ids(await store.claim(at(61), 10, LEASE)) == ["dlv_1"]
    await record(
        store, "dlv_1", failed("dlv_1", "wh_o", 2, at(62)), DeliveryFailed("dlv_1", "wh_o", 2, at(62))
    )
    assert ids(await store.claim(at(63), 10, LEASE)) == ["dlv_2"]


async def test_a_handed_back_head_still_heads_the_line(store: Storage) -> None:
    """A head released unattempted (no slot for it) waits for its new time; the rest behind it."""
    await line_of_three(store)
    (head, *others) = await store.claim(T0, 10, LEASE)
    await store.release([(head, at(5)), *((due, at(100)) for due in others)])
    assert ids(await store.claim(at(4), 10, LEASE)) == []
    assert ids(await store.claim(at(5), 10, LEASE)) == ["dlv_1"]


async def test_a_held_line_keeps_its_order(store: Storage) -> None:
    """Disabling holds the whole line; releasing it, in any order, puts only the head back."""
    await line_of_three(store)
    for n in (3, 1, 2):
        await record(store, f"dlv_{n}", DeliveryHeld(f"dlv_{n}", at(1)))
    assert await store.queue_stats(at(2)) == QueueStats(pending=3, due=3, oldest_due_at=T0, held=3)
    for n in (3, 2, 1):
        await record(store, f"dlv_{n}", DeliveryReleased(f"dlv_{n}", at(2)))
    assert ids(await store.claim(at(2), 10, LEASE)) == ["dlv_c1", "dlv_c2", "dlv_c3", "dlv_1"]


async def test_deliveries_scheduled_held_join_the_line_in_order(store: Storage) -> None:
    """Published while the endpoint is disabled: held in line, and the head goes first once released."""
    await register(store, "wh_o", True)
    for n in (1, 2):
        await publish(store, f"evt_{n}", {f"dlv_{n}": "wh_o"}, ordered=True, held=True)
    assert ids(await store.claim(T0, 10, LEASE)) == []
    await record(store, "dlv_2", DeliveryReleased("dlv_2", at(1)))
    assert ids(await store.claim(at(1), 10, LEASE)) == []
    await record(store, "dlv_1", DeliveryReleased("dlv_1", at(2)))
    assert ids(await store.claim(at(2), 10, LEASE)) == ["dlv_1"]


async def test_a_cancelled_head_lets_the_next_go(store: Storage) -> None:
    """Cancelling (the endpoint deleted) takes a delivery out of the line."""
    await line_of_three(store)
    await record(store, "dlv_1", DeliveryCancelled("dlv_1", "endpoint deleted", at(1)))
    assert ids(await store.claim(at(1), 10, LEASE)) == ["dlv_2", "dlv_c1", "dlv_c2", "dlv_c3"]


async def test_a_manual_redelivery_joins_the_back_of_the_line(store: Storage) -> None:
    """A finished delivery sent again goes behind every delivery already in line."""
    await line_of_three(store, concurrent=False)
    await store.claim(T0, 10, LEASE)
    await record(store, "dlv_1", succeeded("dlv_1", "wh_o", 1, at(1)))
    await record(store, "dlv_1", RedeliveryRequested("dlv_1", at(2), ordered=True))
    order = []
    for second in range(3, 6):
        (due,) = await store.claim(at(second), 10, LEASE)
        order.append(due.delivery.delivery_id)
        await record(
            store, due.delivery.delivery_id, succeeded(due.delivery.delivery_id, "wh_o", 1, at(second))
        )
    assert order == ["dlv_2", "dlv_3", "dlv_1"]


async def test_deliveries_not_in_line_are_not_held_back(store: Storage) -> None:
    """To an ordered endpoint, a delivery scheduled outside the line (before the switch, or a
    test send) goes at once, beside the line's head."""
    await register(store, "wh_o", True)
    await publish(store, "evt_1", {"dlv_1": "wh_o"}, ordered=True)
    await publish(store, "evt_2", {"dlv_2": "wh_o"}, ordered=True)
    await publish(store, "evt_3", {"dlv_3": "wh_o"}, ordered=False)
    assert ids(await store.claim(T0, 10, LEASE)) == ["dlv_1", "dlv_3"]


async def test_parked_deliveries_count_as_pending_not_due(store: Storage) -> None:
    """queue_stats: the deliveries behind a head wait for an attempt, but none is due yet."""
    await register(store, "wh_o", True)
    for n in (1, 2, 3):
        await publish(store, f"evt_{n}", {f"dlv_{n}": "wh_o"}, ordered=True)
    assert await store.queue_stats(T0) == QueueStats(pending=3, due=1, oldest_due_at=T0)


async def test_lines_in_one_append_and_several_lines(store: Storage) -> None:
    """A batch that finishes one head and adds to its line, beside another line: each line's head
    is claimable, and only that."""
    await register(store, "wh_a", True)
    await register(store, "wh_b", True)
    await publish(store, "evt_1", {"dlv_a1": "wh_a", "dlv_b1": "wh_b"}, ordered=True)
    await publish(store, "evt_2", {"dlv_a2": "wh_a", "dlv_b2": "wh_b"}, ordered=True)
    assert ids(await store.claim(T0, 10, LEASE)) == ["dlv_a1", "dlv_b1"]
    view = await store.delivery("dlv_a1")
    assert view is not None
    published = EventPublished("evt_3", ACCOUNT, "deal.attributed", '{"id":"evt_3"}', at(1), at(1))
    scheduled = DeliveryScheduled("dlv_a3", ACCOUNT, "wh_a", "evt_3", "deal.attributed", at(1), ordered=True)
    await store.append(
        StreamAppend("dlv_a1", view.version, (succeeded("dlv_a1", "wh_a", 1, at(1)),)),
        StreamAppend(event_stream(ACCOUNT, "evt_3"), 0, (published,)),
        StreamAppend("dlv_a3", 0, (scheduled,)),
    )
    assert ids(await store.claim(at(1), 10, LEASE)) == ["dlv_a2"]
