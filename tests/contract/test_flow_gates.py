"""The ``FlowGates`` port and the failures-in-a-row count, on every store (ADR 0015)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from test_storage import ACCOUNT, LEASE, at, failed, publish, record, register, succeeded

from attribution_webhooks.core.events import EndpointEnabled, RetryScheduled
from attribution_webhooks.core.flow import Admission, Ask, BreakerRules, Probe, RateLimit
from attribution_webhooks.core.ports import Storage, StreamAppend

RULES = BreakerRules()


async def test_failures_in_a_row_count_up_and_reset(store: Storage) -> None:
    """Each failed attempt adds one; a success and enabling start again from zero."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_1"})
    await record(
        store, "dlv_1", failed("dlv_1", "wh_1", 1, at(10)), RetryScheduled("dlv_1", 2, at(70), at(10))
    )
    await record(
        store, "dlv_2", failed("dlv_2", "wh_1", 1, at(20)), RetryScheduled("dlv_2", 2, at(80), at(20))
    )
    view = await store.endpoint("wh_1")
    assert view is not None
    assert (view.failures, view.version) == (2, 1)
    assert (await store.endpoints(["wh_1"]))["wh_1"].failures == 2
    assert [v.failures for v in await store.list_endpoints(ACCOUNT)] == [2]
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 2, at(70)))
    view = await store.endpoint("wh_1")
    assert view is not None
    assert view.failures == 0
    await record(store, "dlv_2", failed("dlv_2", "wh_1", 2, at(80)))
    await store.append(StreamAppend("wh_1", 1, (EndpointEnabled("wh_1", at(90)),)))
    view = await store.endpoint("wh_1")
    assert view is not None
    assert view.failures == 0


async def test_admit_keeps_the_rate_across_calls(store: Storage) -> None:
    """The gate is shared: a second caller at the same instant gets nothing once the burst is used."""
    limit = RateLimit(2, 1)
    first = await store.admit({"wh_1": Ask(5, limit), "wh_2": Ask(1)}, at(0), RULES)
    assert first["wh_1"].admitted == 2
    assert first["wh_2"] == Admission(1)
    second = await store.admit({"wh_1": Ask(5, limit)}, at(0), RULES)
    assert second["wh_1"].admitted == 0
    assert second["wh_1"].again_at == at(0.5)
    later = await store.admit({"wh_1": Ask(5, limit)}, at(10), RULES)
    assert later["wh_1"].admitted == 2


async def test_concurrent_admits_never_exceed_the_burst(store: Storage) -> None:
    """Callers racing at one instant admit, between them, no more than one caller would."""
    limit = RateLimit(5, 3)
    answers = await asyncio.gather(*(store.admit({"wh_1": Ask(4, limit)}, at(0), RULES) for _ in range(6)))
    assert sum(answer["wh_1"].admitted for answer in answers) == 4


async def test_one_probe_per_probe_time(store: Storage) -> None:
    """Behind an open breaker one caller gets the probe; the next waits for the probe's outcome."""
    probe = Probe(at(0), 3, 3)
    assert (await store.admit({"wh_1": Ask(3, probe=probe)}, at(1), RULES))["wh_1"].admitted == 0
    taken = await store.admit({"wh_1": Ask(3, probe=probe)}, at(5), RULES)
    assert taken["wh_1"].admitted == 1
    again = await store.admit({"wh_1": Ask(3, probe=probe)}, at(6), RULES)
    assert again["wh_1"] == Admission(0, at(5) + RULES.probe_lost_after)
    failed_once = Probe(at(0), 3, 4)
    next_time = await store.admit({"wh_1": Ask(3, probe=failed_once)}, at(6), RULES)
    assert next_time["wh_1"].again_at == at(5) + timedelta(seconds=10)


async def test_wake_makes_what_waited_due_again(store: Storage) -> None:
    """Deliveries handed back past their due time are due now; a retry due later keeps its time."""
    await register(store, "wh_1", "wh_2")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_1", "dlv_3": "wh_2"})
    await record(
        store, "dlv_2", failed("dlv_2", "wh_1", 1, at(0)), RetryScheduled("dlv_2", 2, at(3600), at(0))
    )
    claimed = await store.claim(at(1), 10, LEASE)
    assert {due.delivery.delivery_id for due in claimed} == {"dlv_1", "dlv_3"}
    await store.release([(due, at(7200)) for due in claimed])
    await store.wake("wh_1", at(100))
    assert await store.next_due() == at(100)
    woken = await store.claim(at(100), 10, LEASE)
    assert [due.delivery.delivery_id for due in woken] == ["dlv_1"]
    # At the retry's time: the retry, and dlv_1 again (its lease ran out); wh_2's still waits.
    later = {due.delivery.delivery_id for due in await store.claim(at(3600), 10, LEASE)}
    assert later == {"dlv_1", "dlv_2"}
