"""The queue's leases across crashes (issue 10.8), on every store: a heartbeat renews them, and
each lease takes the next attempt number, so an attempt lost with its worker is never numbered
twice and is logged as abandoned."""

from __future__ import annotations

from datetime import timedelta

from test_storage import T0, at, failed, publish, record, register, succeeded

from attribution_webhooks.core import delivery as dlv
from attribution_webhooks.core.events import AttemptAbandoned, RetryScheduled
from attribution_webhooks.core.outcomes import ErrorKind
from attribution_webhooks.core.ports import Storage
from attribution_webhooks.core.retry import RetryPolicy

SHORT = timedelta(seconds=5)


async def test_a_renewed_lease_hides_the_delivery_until_the_renewal_runs_out(store: Storage) -> None:
    """renew() pushes a held lease's expiry; a dead worker's lease, not renewed, expires on time."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_1"})
    live, dead = await store.claim(T0, 10, SHORT)
    await store.renew([live], at(4) + SHORT)
    assert await store.next_due() == T0 + SHORT
    assert [d.delivery.delivery_id for d in await store.claim(at(5), 10, SHORT)] == [
        dead.delivery.delivery_id
    ]
    assert list(await store.claim(at(9) - timedelta(microseconds=1), 10, SHORT)) == []
    assert [d.delivery.delivery_id for d in await store.claim(at(9), 10, SHORT)] == [
        live.delivery.delivery_id
    ]
    await store.renew([], at(20))


async def test_renew_leaves_alone_a_lease_that_ended_or_passed_on(store: Storage) -> None:
    """A lease handed back, recorded or taken over by another worker is not renewed by its old holder."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_1", "dlv_3": "wh_1"})
    first = {d.delivery.delivery_id: d for d in await store.claim(T0, 10, SHORT)}
    await store.release([(first["dlv_1"], at(1))])
    await record(store, "dlv_2", succeeded("dlv_2", "wh_1", 1, at(1)))
    taken = await store.claim(T0 + SHORT, 10, SHORT)  # dlv_1 (handed back) and dlv_3 (expired)
    assert sorted(d.delivery.delivery_id for d in taken) == ["dlv_1", "dlv_3"]
    await store.renew(list(first.values()), at(100))
    assert await store.next_due() == T0 + 2 * SHORT
    assert await store.delivery("dlv_2") is not None
    assert list(await store.claim(T0 + 2 * SHORT - timedelta(microseconds=1), 10, SHORT)) == []


async def test_each_lease_takes_the_next_attempt_number(store: Storage) -> None:
    """The first lease is attempt 1; a lease after one that expired (its worker died) is attempt 2."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"})
    (first,) = await store.claim(T0, 10, SHORT)
    assert first.attempt == 1
    (second,) = await store.claim(T0 + SHORT, 10, SHORT)
    assert (second.attempt, second.delivery.attempts) == (2, 0)
    (third,) = await store.claim(T0 + 2 * SHORT, 10, SHORT)
    assert third.attempt == 3


async def test_handing_a_lease_back_gives_its_number_back(store: Storage) -> None:
    """A delivery released unattempted is claimed again with the same number; earlier lost ones stay lost."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"})
    await store.claim(T0, 10, SHORT)  # attempt 1: its worker dies
    (second,) = await store.claim(T0 + SHORT, 10, SHORT)
    assert second.attempt == 2
    await store.release([(second, at(6))])
    (again,) = await store.claim(at(6), 10, SHORT)
    assert again.attempt == 2
    await store.release([(again, at(7))])
    (once_more,) = await store.claim(at(7), 10, SHORT)
    assert once_more.attempt == 2


async def test_a_recorded_outcome_settles_the_numbers(store: Storage) -> None:
    """After attempt 2 is recorded with lost attempt 1 abandoned, the next lease is attempt 3, and
    the log shows attempt 1 as outcome unknown."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"})
    await store.claim(T0, 10, SHORT)
    (second,) = await store.claim(T0 + SHORT, 10, SHORT)
    assert second.attempt == 2
    abandoned = AttemptAbandoned("dlv_1", "wh_1", 1, dlv.WORKER_LOST, at(6))
    retry = RetryScheduled("dlv_1", 3, at(10), at(6))
    await record(store, "dlv_1", abandoned, failed("dlv_1", "wh_1", 2, at(6), status=None), retry)
    (third,) = await store.claim(at(10), 10, SHORT)
    assert (third.attempt, third.delivery.attempts) == (3, 2)
    log = await store.attempts("dlv_1")
    assert [(a.attempt, a.succeeded, a.error, a.detail) for a in log] == [
        (1, False, ErrorKind.WORKER_LOST, "outcome unknown (worker lost)"),
        (2, False, ErrorKind.CONNECTION_REFUSED, "connection refused"),
    ]


async def test_a_redelivery_numbers_from_one_again(store: Storage) -> None:
    """A fresh attempt sequence starts at attempt 1 whatever the last one lost."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"})
    await store.claim(T0, 10, SHORT)
    (second,) = await store.claim(T0 + SHORT, 10, SHORT)
    assert second.attempt == 2
    await record(
        store,
        "dlv_1",
        AttemptAbandoned("dlv_1", "wh_1", 1, dlv.WORKER_LOST, at(6)),
        succeeded("dlv_1", "wh_1", 2, at(6)),
    )
    view = await store.delivery("dlv_1")
    assert view is not None
    assert view.delivery.attempts == 2
    await record(store, "dlv_1", dlv.decide(dlv.Redeliver(at(20)), view.delivery, RetryPolicy())[0])
    (fresh,) = await store.claim(at(20), 10, SHORT)
    assert (fresh.attempt, fresh.delivery.attempts) == (1, 0)
