"""The Storage port's contract: the event store, the read models and the delivery queue.

Every test runs against every backend (memory, SQLite, PostgreSQL); they must agree.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.endpoint import EndpointStatus
from attribution_webhooks.core.errors import ConcurrencyConflict
from attribution_webhooks.core.events import (
    AttemptAbandoned,
    AttemptFailed,
    AttemptSucceeded,
    DeliveryCancelled,
    DeliveryEvent,
    DeliveryFailed,
    DeliveryHeld,
    DeliveryReleased,
    DeliveryScheduled,
    DisableReason,
    DomainEvent,
    EndpointDeleted,
    EndpointDisabled,
    EndpointEnabled,
    EndpointRegistered,
    EndpointUpdated,
    EventPublished,
    RedeliveryRequested,
    RetryScheduled,
    SecretRotated,
    event_stream,
)
from attribution_webhooks.core.outcomes import ErrorKind
from attribution_webhooks.core.ports import Storage, StreamAppend
from attribution_webhooks.core.views import QueueStats

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
ACCOUNT = "acct_1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def registered(
    endpoint_id: str, account: str = ACCOUNT, types: tuple[str, ...] = ("deal.attributed",)
) -> EndpointRegistered:
    return EndpointRegistered(
        endpoint_id, account, f"https://example.com/{endpoint_id}", types, "s3cret-s3cret-XYZ", "", False, T0
    )


async def register(
    store: Storage, *endpoint_ids: str, account: str = ACCOUNT, types: tuple[str, ...] = ("deal.attributed",)
) -> None:
    await store.append(*(StreamAppend(e, 0, (registered(e, account, types),)) for e in endpoint_ids))


async def publish(
    store: Storage,
    event_id: str,
    targets: dict[str, str],
    when: datetime = T0,
    account: str = ACCOUNT,
    held: bool = False,
) -> None:
    """Publish ``event_id`` with one delivery per ``{delivery_id: endpoint_id}``, as the service does."""
    published = EventPublished(event_id, account, "deal.attributed", f'{{"id":"{event_id}"}}', when, when)
    appends = [StreamAppend(event_stream(account, event_id), 0, (published,))]
    for delivery_id, endpoint_id in targets.items():
        scheduled = DeliveryScheduled(
            delivery_id, account, endpoint_id, event_id, "deal.attributed", when, held=held
        )
        appends.append(StreamAppend(delivery_id, 0, (scheduled,)))
    await store.append(*appends)


def succeeded(delivery_id: str, endpoint_id: str, attempt: int, when: datetime) -> AttemptSucceeded:
    return AttemptSucceeded(delivery_id, endpoint_id, attempt, when, 12.5, 200, "OK")


def failed(
    delivery_id: str, endpoint_id: str, attempt: int, when: datetime, status: int | None = 500
) -> AttemptFailed:
    error = None if status is not None else ErrorKind.CONNECTION_REFUSED
    detail = f"HTTP {status}" if status is not None else "connection refused"
    return AttemptFailed(delivery_id, endpoint_id, attempt, when, 30.0, status, error, detail, "oops")


async def record(store: Storage, delivery_id: str, *events: DeliveryEvent) -> None:
    view = await store.delivery(delivery_id)
    assert view is not None
    await store.append(StreamAppend(delivery_id, view.version, events))


# --- the event store ------------------------------------------------------------------------------


async def test_append_then_read_returns_events_in_version_order(store: Storage) -> None:
    """A stream reads back its events, numbered 1… within it and by global position."""
    last = await store.append(
        StreamAppend("wh_1", 0, (registered("wh_1"), EndpointEnabled("wh_1", at(1)))),
    )
    recorded = await store.read("wh_1")
    assert [r.version for r in recorded] == [1, 2]
    assert [r.position for r in recorded] == [1, 2]
    assert last == 2
    assert [r.event for r in recorded] == [registered("wh_1"), EndpointEnabled("wh_1", at(1))]
    assert all(r.stream_id == "wh_1" for r in recorded)


async def test_read_of_unknown_stream_is_empty(store: Storage) -> None:
    """Reading a stream that was never written gives nothing, not an error."""
    assert list(await store.read("wh_nope")) == []


async def test_append_at_wrong_version_conflicts_and_writes_nothing(store: Storage) -> None:
    """An append expecting another version than the stream's raises and leaves the stream as it was."""
    await store.append(StreamAppend("wh_1", 0, (registered("wh_1"),)))
    with pytest.raises(ConcurrencyConflict) as raised:
        await store.append(StreamAppend("wh_1", 0, (registered("wh_1"),)))
    assert raised.value.streams == ("wh_1",)
    with pytest.raises(ConcurrencyConflict):
        await store.append(StreamAppend("wh_1", 2, (EndpointEnabled("wh_1", at(1)),)))
    assert len(await store.read("wh_1")) == 1
    assert len(await store.read_all()) == 1


async def test_multi_stream_append_is_all_or_nothing(store: Storage) -> None:
    """If one stream of an append conflicts, no stream is written, and the conflict names only it."""
    await store.append(StreamAppend("wh_2", 0, (registered("wh_2"),)))
    with pytest.raises(ConcurrencyConflict) as raised:
        await store.append(
            StreamAppend("wh_1", 0, (registered("wh_1"),)),
            StreamAppend("wh_2", 0, (registered("wh_2"),)),
        )
    assert raised.value.streams == ("wh_2",)
    assert list(await store.read("wh_1")) == []
    assert await store.endpoint("wh_1") is None
    assert len(await store.read_all()) == 1


async def test_appends_to_one_stream_in_one_call_follow_each_other(store: Storage) -> None:
    """Two appends to one stream in one call: the second expects the version the first leaves."""
    await store.append(
        StreamAppend("wh_1", 0, (registered("wh_1"),)),
        StreamAppend("wh_1", 1, (EndpointDisabled("wh_1", DisableReason.MANUAL, at(1)),)),
    )
    assert [r.version for r in await store.read("wh_1")] == [1, 2]
    with pytest.raises(ConcurrencyConflict):
        await store.append(
            StreamAppend("wh_1", 2, (EndpointEnabled("wh_1", at(2)),)),
            StreamAppend("wh_1", 2, (EndpointEnabled("wh_1", at(3)),)),
        )


async def test_empty_append_checks_the_version_and_writes_nothing(store: Storage) -> None:
    """An append of no events returns the last position, and still checks the expected version."""
    await store.append(StreamAppend("wh_1", 0, (registered("wh_1"),)))
    assert await store.append(StreamAppend("wh_1", 1, ())) == 1
    with pytest.raises(ConcurrencyConflict):
        await store.append(StreamAppend("wh_1", 0, ()))


async def test_read_all_is_global_order_from_a_position(store: Storage) -> None:
    """read_all pages through every stream's events by position."""
    await register(store, "wh_1")
    await register(store, "wh_2")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_2"})
    everything = await store.read_all()
    assert [r.position for r in everything] == [1, 2, 3, 4, 5]
    assert [r.stream_id for r in everything] == [
        "wh_1",
        "wh_2",
        event_stream(ACCOUNT, "evt_1"),
        "dlv_1",
        "dlv_2",
    ]
    page = await store.read_all(after=2, limit=2)
    assert [r.position for r in page] == [3, 4]
    assert list(await store.read_all(after=5)) == []


async def test_every_event_type_round_trips(store: Storage) -> None:
    """Each kind of event reads back equal to what was appended, every optional field included."""
    plus_two = timezone(timedelta(hours=2))
    endpoint_events: tuple[DomainEvent, ...] = (
        EndpointRegistered(
            "wh_1",
            ACCOUNT,
            "https://x.example/é",
            ("deal.attributed", "partner.created"),
            "s3cret-s3cret-XYZ",
            "naïve ✓",
            True,
            T0,
        ),
        EndpointUpdated("wh_1", at(1), url="https://y.example", event_types=("event.tracked",)),
        EndpointUpdated("wh_1", at(2), description="d", standard_webhooks=False),
        SecretRotated("wh_1", "n3w-s3cret-ABCDEF", at(3600), at(3)),
        EndpointDisabled("wh_1", DisableReason.FAILING, at(4), failing_since=at(0.5)),
        EndpointEnabled("wh_1", datetime(2024, 1, 20, 17, 0, 5, tzinfo=plus_two)),
        EndpointDeleted("wh_1", at(6)),
    )
    published = EventPublished("evt_1", ACCOUNT, "deal.attributed", '{"a":"ü"}', at(-1), T0, test=True)
    delivery_events: tuple[DomainEvent, ...] = (
        DeliveryScheduled("dlv_1", ACCOUNT, "wh_1", "evt_1", "deal.attributed", T0, held=True, test=True),
        DeliveryReleased("dlv_1", at(1)),
        failed("dlv_1", "wh_1", 1, at(2)),
        failed("dlv_1", "wh_1", 2, at(3), status=None),
        RetryScheduled("dlv_1", 3, at(63), at(3.5)),
        DeliveryHeld("dlv_1", at(4)),
        DeliveryReleased("dlv_1", at(5)),
        DeliveryFailed("dlv_1", "wh_1", 3, at(6)),
        RedeliveryRequested("dlv_1", at(7)),
        succeeded("dlv_1", "wh_1", 1, at(8)),
        RedeliveryRequested("dlv_1", at(9)),
        DeliveryCancelled("dlv_1", "endpoint deleted", at(10)),
    )
    await store.append(
        StreamAppend("wh_1", 0, endpoint_events),
        StreamAppend(event_stream(ACCOUNT, "evt_1"), 0, (published,)),
        StreamAppend("dlv_1", 0, delivery_events),
    )
    # The endpoint ends deleted, so its secrets are shredded (ADR 0010); the rest reads back as written.
    shredded = [
        attrs.evolve(e, secret="") if isinstance(e, EndpointRegistered | SecretRotated) else e
        for e in endpoint_events
    ]
    assert [r.event for r in await store.read_all()] == [*shredded, published, *delivery_events]
    times = [r.event for r in await store.read("wh_1")][5]
    assert isinstance(times, EndpointEnabled)
    assert times.enabled_at == at(5)
    assert times.enabled_at.utcoffset() is not None


# --- endpoints ------------------------------------------------------------------------------------


async def test_endpoint_view_follows_its_events(store: Storage) -> None:
    """The endpoint read model is the fold of its stream, at the stream's version."""
    assert await store.endpoint("wh_1") is None
    await register(store, "wh_1")
    view = await store.endpoint("wh_1")
    assert view is not None
    assert (view.version, view.endpoint.status, view.endpoint.url) == (
        1,
        EndpointStatus.ENABLED,
        "https://example.com/wh_1",
    )
    await store.append(
        StreamAppend(
            "wh_1",
            1,
            (
                EndpointUpdated("wh_1", at(1), url="https://new.example"),
                SecretRotated("wh_1", "n3w-s3cret-ABCDEF", at(60), at(2)),
                EndpointDisabled("wh_1", DisableReason.MANUAL, at(3)),
            ),
        )
    )
    view = await store.endpoint("wh_1")
    assert view is not None
    assert view.version == 4
    assert view.endpoint.url == "https://new.example"
    assert view.endpoint.status is EndpointStatus.DISABLED
    assert view.endpoint.signing_secrets(at(30)) == ("n3w-s3cret-ABCDEF", "s3cret-s3cret-XYZ")
    assert view.endpoint.updated_at == at(3)
    await store.append(StreamAppend("wh_1", 4, (EndpointDeleted("wh_1", at(4)),)))
    deleted = await store.endpoint("wh_1")
    assert deleted is not None
    assert deleted.endpoint.status is EndpointStatus.DELETED


async def test_endpoints_returns_only_those_that_exist(store: Storage) -> None:
    """endpoints(ids) maps the known ids to their views and leaves the rest out."""
    await register(store, "wh_1", "wh_2")
    found = await store.endpoints(["wh_2", "wh_9", "wh_1"])
    assert sorted(found) == ["wh_1", "wh_2"]
    assert found["wh_2"].endpoint.endpoint_id == "wh_2"
    assert dict(await store.endpoints([])) == {}


async def test_subscribers_are_live_endpoints_of_the_account_for_the_type(store: Storage) -> None:
    """Subscribers: the account's endpoints for the type, disabled too, not deleted, by registration."""
    await register(store, "wh_b", types=("deal.attributed", "partner.created"))
    await register(store, "wh_a")
    await register(store, "wh_c", types=("partner.created",))
    await register(store, "wh_d")
    await register(store, "wh_x", account="acct_2")
    await store.append(StreamAppend("wh_a", 1, (EndpointDisabled("wh_a", DisableReason.MANUAL, at(1)),)))
    await store.append(StreamAppend("wh_d", 1, (EndpointDeleted("wh_d", at(1)),)))
    found = await store.subscribers(ACCOUNT, "deal.attributed")
    assert [v.endpoint.endpoint_id for v in found] == ["wh_b", "wh_a"]
    assert [v.endpoint.endpoint_id for v in await store.subscribers(ACCOUNT, "partner.created")] == [
        "wh_b",
        "wh_c",
    ]
    assert list(await store.subscribers("acct_9", "deal.attributed")) == []


async def test_list_endpoints_pages_by_id_without_deleted_ones(store: Storage) -> None:
    """list_endpoints: ids ascending after the cursor, deleted and other accounts' left out."""
    await register(store, "wh_3", "wh_1", "wh_4", "wh_2")
    await register(store, "wh_0", account="acct_2")
    await store.append(StreamAppend("wh_3", 1, (EndpointDeleted("wh_3", at(1)),)))
    ids = [v.endpoint.endpoint_id for v in await store.list_endpoints(ACCOUNT)]
    assert ids == ["wh_1", "wh_2", "wh_4"]
    assert [v.endpoint.endpoint_id for v in await store.list_endpoints(ACCOUNT, limit=2)] == ["wh_1", "wh_2"]
    assert [v.endpoint.endpoint_id for v in await store.list_endpoints(ACCOUNT, after="wh_2")] == ["wh_4"]
    assert list(await store.list_endpoints(ACCOUNT, after="wh_4")) == []


async def test_failing_since_starts_with_a_failure_and_ends_with_a_success(store: Storage) -> None:
    """failing_since is the first failed attempt since the last success; the version does not move."""
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
    assert (view.failing_since, view.version) == (at(10), 1)
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 2, at(70)))
    view = await store.endpoint("wh_1")
    assert view is not None
    assert view.failing_since is None
    await record(
        store, "dlv_2", failed("dlv_2", "wh_1", 2, at(80)), RetryScheduled("dlv_2", 3, at(380), at(80))
    )
    view = await store.endpoint("wh_1")
    assert view is not None
    assert view.failing_since == at(80)


# --- published events -----------------------------------------------------------------------------


async def test_published_event_is_found_by_account_and_id(store: Storage) -> None:
    """event(account, id) returns the published event with its exact body; other accounts see nothing."""
    await publish(store, "evt_1", {}, when=at(5))
    view = await store.event(ACCOUNT, "evt_1")
    assert view is not None
    assert (view.event_id, view.event_type, view.body, view.published_at) == (
        "evt_1",
        "deal.attributed",
        '{"id":"evt_1"}',
        at(5),
    )
    assert await store.event("acct_2", "evt_1") is None
    assert await store.event(ACCOUNT, "evt_2") is None


# --- the delivery log -----------------------------------------------------------------------------


async def test_delivery_view_summarises_the_latest_attempt(store: Storage) -> None:
    """A delivery's row: its folded state, version, times and last attempt."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"}, when=at(1))
    view = await store.delivery("dlv_1")
    assert view is not None
    assert (view.delivery.status, view.version, view.created_at, view.updated_at) == (
        DeliveryStatus.SCHEDULED,
        1,
        at(1),
        at(1),
    )
    assert view.delivery.due_at == at(1)
    assert view.last_attempt_at is None
    await record(
        store,
        "dlv_1",
        failed("dlv_1", "wh_1", 1, at(2), status=None),
        RetryScheduled("dlv_1", 2, at(62), at(2.5)),
    )
    view = await store.delivery("dlv_1")
    assert view is not None
    assert (view.delivery.status, view.delivery.attempts, view.delivery.due_at) == (
        DeliveryStatus.RETRYING,
        1,
        at(62),
    )
    assert (view.version, view.updated_at, view.created_at) == (3, at(2.5), at(1))
    assert (view.last_attempt_at, view.last_status_code, view.last_error) == (
        at(2),
        None,
        ErrorKind.CONNECTION_REFUSED,
    )
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 2, at(62)))
    view = await store.delivery("dlv_1")
    assert view is not None
    assert (view.delivery.status, view.delivery.due_at, view.last_status_code, view.last_error) == (
        DeliveryStatus.SUCCEEDED,
        None,
        200,
        None,
    )
    assert await store.delivery("dlv_9") is None


async def test_attempts_are_logged_oldest_first_across_redeliveries(store: Storage) -> None:
    """The attempt log keeps every attempt of every sequence, in the order they were recorded."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"})
    await record(store, "dlv_1", failed("dlv_1", "wh_1", 1, at(1)), DeliveryFailed("dlv_1", "wh_1", 1, at(1)))
    await record(store, "dlv_1", RedeliveryRequested("dlv_1", at(5)))
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 1, at(6)))
    logged = await store.attempts("dlv_1")
    assert [(a.attempt, a.started_at, a.succeeded, a.status_code) for a in logged] == [
        (1, at(1), False, 500),
        (1, at(6), True, 200),
    ]
    first = logged[0]
    assert (first.elapsed_ms, first.error, first.detail, first.response_body) == (
        30.0,
        None,
        "HTTP 500",
        "oops",
    )
    assert (logged[1].detail, logged[1].response_body, logged[1].error) == ("", "OK", None)
    assert list(await store.attempts("dlv_9")) == []


async def test_attempts_of_many_deliveries_match_each_ones_log(store: Storage) -> None:
    """attempts_of(): each delivery's attempts as attempts() gives them, interleaved writes and all."""
    await register(store, "wh_1", "wh_2")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_2", "dlv_3": "wh_1"})
    await record(store, "dlv_2", failed("dlv_2", "wh_2", 1, at(1)))
    await record(store, "dlv_1", failed("dlv_1", "wh_1", 1, at(2), status=None))
    await record(store, "dlv_2", succeeded("dlv_2", "wh_2", 2, at(3)))
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 2, at(4)))
    found = await store.attempts_of(["dlv_1", "dlv_2", "dlv_3", "dlv_9", "dlv_1"])
    assert set(found) == {"dlv_1", "dlv_2"}
    for delivery_id in ("dlv_1", "dlv_2"):
        assert list(found[delivery_id]) == list(await store.attempts(delivery_id))
    assert [(a.attempt, a.started_at) for a in found["dlv_2"]] == [(1, at(1)), (2, at(3))]
    assert found["dlv_1"][0].error is ErrorKind.CONNECTION_REFUSED
    assert dict(await store.attempts_of([])) == {}


async def test_deliveries_filter_and_page_newest_first(store: Storage) -> None:
    """deliveries(): the account's, newest id first, by endpoint, event, status, update time and cursor."""
    await register(store, "wh_1", "wh_2")
    await register(store, "wh_9", account="acct_2")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_2"}, when=at(1))
    await publish(store, "evt_2", {"dlv_3": "wh_1", "dlv_4": "wh_2"}, when=at(2))
    await publish(store, "evt_1", {"dlv_5": "wh_9"}, when=at(2), account="acct_2")
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 1, at(10)))
    await record(
        store, "dlv_4", failed("dlv_4", "wh_2", 1, at(11)), DeliveryFailed("dlv_4", "wh_2", 1, at(11))
    )

    async def ids(**filters: object) -> list[str]:
        return [v.delivery.delivery_id for v in await store.deliveries(ACCOUNT, **filters)]  # type: ignore[arg-type]

    assert await ids() == ["dlv_4", "dlv_3", "dlv_2", "dlv_1"]
    assert await ids(endpoint_id="wh_1") == ["dlv_3", "dlv_1"]
    assert await ids(event_id="evt_1") == ["dlv_2", "dlv_1"]
    assert await ids(statuses=[DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED]) == ["dlv_4", "dlv_1"]
    assert await ids(statuses=[]) == []
    assert await ids(since=at(2)) == ["dlv_4", "dlv_3", "dlv_1"]
    assert await ids(since=at(10.5)) == ["dlv_4"]
    assert await ids(before="dlv_3") == ["dlv_2", "dlv_1"]
    assert await ids(limit=3) == ["dlv_4", "dlv_3", "dlv_2"]
    assert await ids(endpoint_id="wh_2", statuses=[DeliveryStatus.SCHEDULED], before="dlv_4") == ["dlv_2"]
    other = await store.deliveries("acct_2")
    assert [v.delivery.delivery_id for v in other] == ["dlv_5"]


async def test_deliveries_filter_by_event_type_and_creation_time(store: Storage) -> None:
    """deliveries(): event_type, created_from (inclusive) and created_until (exclusive) narrow the log."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"}, when=at(1))
    await publish(store, "evt_2", {"dlv_2": "wh_1"}, when=at(2))
    await publish(store, "evt_3", {"dlv_3": "wh_1"}, when=at(3))
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 1, at(10)))

    async def ids(**filters: object) -> list[str]:
        return [v.delivery.delivery_id for v in await store.deliveries(ACCOUNT, **filters)]  # type: ignore[arg-type]

    assert await ids(event_type="deal.attributed") == ["dlv_3", "dlv_2", "dlv_1"]
    assert await ids(event_type="partner.created") == []
    assert await ids(created_from=at(2)) == ["dlv_3", "dlv_2"]
    assert await ids(created_until=at(2)) == ["dlv_1"]
    assert await ids(created_from=at(2), created_until=at(3), event_type="deal.attributed") == ["dlv_2"]
    assert await ids(created_from=at(1), before="dlv_2") == ["dlv_1"]


async def test_endpoint_health_counts_recent_attempts_per_endpoint(store: Storage) -> None:
    """endpoint_health(): attempts since a time per endpoint of the account, successes, and the latest."""
    await register(store, "wh_1", "wh_2", "wh_3")
    await register(store, "wh_9", account="acct_2")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_2", "dlv_3": "wh_3"}, when=at(1))
    await publish(store, "evt_2", {"dlv_4": "wh_1"}, when=at(2))
    await publish(store, "evt_1", {"dlv_9": "wh_9"}, when=at(2), account="acct_2")
    await record(store, "dlv_3", failed("dlv_3", "wh_3", 1, at(5)), RetryScheduled("dlv_3", 2, at(65), at(5)))
    await record(
        store, "dlv_1", failed("dlv_1", "wh_1", 1, at(20)), RetryScheduled("dlv_1", 2, at(80), at(20))
    )
    await record(store, "dlv_4", succeeded("dlv_4", "wh_1", 1, at(21)))
    await record(
        store, "dlv_2", failed("dlv_2", "wh_2", 1, at(22)), RetryScheduled("dlv_2", 2, at(82), at(22))
    )
    await record(store, "dlv_9", succeeded("dlv_9", "wh_9", 1, at(23)))
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 2, at(80)))
    await record(
        store, "dlv_2", failed("dlv_2", "wh_2", 2, at(82)), DeliveryFailed("dlv_2", "wh_2", 2, at(82))
    )

    health = await store.endpoint_health(ACCOUNT, at(10))
    assert set(health) == {"wh_1", "wh_2"}  # wh_3's only attempt is older; wh_9 is another account's
    wh_1, wh_2 = health["wh_1"], health["wh_2"]
    assert (wh_1.attempts, wh_1.succeeded, wh_1.last_attempt_at, wh_1.last_succeeded) == (3, 2, at(80), True)
    assert (wh_2.attempts, wh_2.succeeded, wh_2.last_attempt_at, wh_2.last_succeeded) == (2, 0, at(82), False)
    assert await store.endpoint_health(ACCOUNT, at(100)) == {}
    assert set(await store.endpoint_health("acct_2", at(0))) == {"wh_9"}
    # Bounded: only each endpoint's latest delivery (dlv_4 for wh_1, whose one attempt succeeded).
    latest = await store.endpoint_health(ACCOUNT, at(10), deliveries=1)
    assert (latest["wh_1"].attempts, latest["wh_1"].succeeded, latest["wh_1"].last_attempt_at) == (
        1,
        1,
        at(21),
    )
    assert latest["wh_2"].attempts == 2


# --- the queue ------------------------------------------------------------------------------------


async def test_endpoint_health_leaves_out_attempts_whose_outcome_is_unknown(store: Storage) -> None:
    """An abandoned attempt (our worker was lost, not the endpoint) is neither a success nor a
    failure of the endpoint: the dashboard's success rate ignores it."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"}, when=at(1))
    await record(
        store, "dlv_1", AttemptAbandoned("dlv_1", "wh_1", 1, "outcome unknown (worker lost)", at(20))
    )
    assert await store.endpoint_health(ACCOUNT, at(10)) == {}
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 2, at(30)))
    [(endpoint_id, health)] = (await store.endpoint_health(ACCOUNT, at(10))).items()
    assert (endpoint_id, health.attempts, health.succeeded, health.last_succeeded) == ("wh_1", 1, 1, True)


async def test_claim_leases_due_deliveries_earliest_first_up_to_the_limit(store: Storage) -> None:
    """A claim returns what is due at ``now``, earliest first, at most ``limit``, with body and lease."""
    await register(store, "wh_1")
    await publish(store, "evt_3", {"dlv_3": "wh_1"}, when=at(3))
    await publish(store, "evt_1", {"dlv_1": "wh_1"}, when=at(1))
    await publish(store, "evt_2", {"dlv_2": "wh_1"}, when=at(2))
    await publish(store, "evt_9", {"dlv_9": "wh_1"}, when=at(9))
    claimed = await store.claim(at(5), 2, LEASE)
    assert [d.delivery.delivery_id for d in claimed] == ["dlv_1", "dlv_2"]
    first = claimed[0]
    assert (first.version, first.leased_until, first.body) == (1, at(5) + LEASE, '{"id":"evt_1"}')
    assert first.delivery.status is DeliveryStatus.SCHEDULED
    assert first.lease
    assert [d.delivery.delivery_id for d in await store.claim(at(5), 10, LEASE)] == ["dlv_3"]
    assert list(await store.claim(at(5), 10, LEASE)) == []
    assert list(await store.claim(at(9), 0, LEASE)) == []


async def test_a_lease_hides_the_delivery_until_it_expires(store: Storage) -> None:
    """A leased delivery is not claimed again until its lease runs out; then it is, with a new lease."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"})
    first = await store.claim(T0, 10, LEASE)
    assert len(first) == 1
    assert list(await store.claim(T0 + LEASE - timedelta(microseconds=1), 10, LEASE)) == []
    again = await store.claim(T0 + LEASE, 10, LEASE)
    assert [d.delivery.delivery_id for d in again] == ["dlv_1"]
    assert again[0].lease != first[0].lease
    assert again[0].leased_until == T0 + 2 * LEASE


async def test_recording_an_outcome_ends_the_lease(store: Storage) -> None:
    """After an attempt's outcome is recorded, the queue follows the delivery's state, not the lease."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_1"})
    claimed = await store.claim(T0, 10, LEASE)
    assert len(claimed) == 2
    await store.append(
        StreamAppend("dlv_1", 1, (succeeded("dlv_1", "wh_1", 1, at(1)),)),
        StreamAppend(
            "dlv_2", 1, (failed("dlv_2", "wh_1", 1, at(1)), RetryScheduled("dlv_2", 2, at(10), at(1)))
        ),
    )
    assert await store.next_due() == at(10)
    retried = await store.claim(at(10), 10, LEASE)
    assert [(d.delivery.delivery_id, d.version, d.delivery.attempts) for d in retried] == [("dlv_2", 3, 1)]
    await store.release([(d, at(11)) for d in claimed])  # the old leases ended with the recorded outcomes
    assert await store.next_due() == at(10) + LEASE


async def test_release_hands_back_a_lease_only_while_it_is_held(store: Storage) -> None:
    """release() makes a leased delivery due again; a lease since taken over is left alone."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_1"})
    claimed = await store.claim(T0, 10, LEASE)
    await store.release([(claimed[0], at(5))])
    assert await store.next_due() == at(5)
    assert [d.delivery.delivery_id for d in await store.claim(at(5), 10, LEASE)] == ["dlv_1"]
    retaken = await store.claim(T0 + LEASE, 10, LEASE)
    assert [d.delivery.delivery_id for d in retaken] == ["dlv_2"]
    await store.release([(claimed[1], at(1))])  # stale: dlv_2 belongs to the second claim now
    assert list(await store.claim(at(64), 10, LEASE)) == []
    await store.release([(retaken[0], at(62))])
    assert [d.delivery.delivery_id for d in await store.claim(at(64), 10, LEASE)] == ["dlv_2"]
    await store.release([])


async def test_release_sets_each_delivery_its_own_time(store: Storage) -> None:
    """Deliveries handed back together can be due at different times (a paced backlog)."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1", "dlv_2": "wh_1"})
    claimed = await store.claim(T0, 10, LEASE)
    await store.release([(claimed[0], at(9)), (claimed[1], at(3))])
    assert await store.next_due() == at(3)
    assert [d.delivery.delivery_id for d in await store.claim(at(3), 10, LEASE)] == ["dlv_2"]
    assert [d.delivery.delivery_id for d in await store.claim(at(9), 10, LEASE)] == ["dlv_1"]


async def test_next_due_is_the_earliest_pending_delivery(store: Storage) -> None:
    """next_due: the earliest moment something becomes claimable; None when nothing is pending."""
    assert await store.next_due() is None
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"}, when=at(7))
    await publish(store, "evt_2", {"dlv_2": "wh_1"}, when=at(3))
    await publish(store, "evt_3", {"dlv_3": "wh_1"}, when=at(1), held=True)
    assert await store.next_due() == at(3)
    await store.claim(at(3), 1, LEASE)
    assert await store.next_due() == at(7)
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 1, at(8)))
    assert await store.next_due() == at(3) + LEASE
    await record(store, "dlv_2", DeliveryCancelled("dlv_2", "endpoint deleted", at(9)))
    assert await store.next_due() is None


async def test_queue_stats_count_pending_due_held_and_disabled(store: Storage) -> None:
    """queue_stats: pending (leased included), due now and the oldest due time, held deliveries,
    disabled endpoints; finished, cancelled and deleted ones are not counted."""
    assert await store.queue_stats(T0) == QueueStats()
    await register(store, "wh_1", "wh_2", "wh_3")
    await publish(store, "evt_1", {"dlv_1": "wh_1"}, when=at(1))
    await publish(store, "evt_2", {"dlv_2": "wh_1"}, when=at(3))
    await publish(store, "evt_3", {"dlv_3": "wh_1"}, when=at(20))
    await publish(store, "evt_4", {"dlv_4": "wh_2"}, when=at(2), held=True)
    await store.append(StreamAppend("wh_2", 1, (EndpointDisabled("wh_2", DisableReason.MANUAL, at(2)),)))
    await store.append(StreamAppend("wh_3", 1, (EndpointDeleted("wh_3", at(2)),)))
    stats = await store.queue_stats(at(5))
    assert stats == QueueStats(pending=3, due=2, oldest_due_at=at(1), held=1, disabled_endpoints=1)
    claimed = await store.claim(at(5), 1, LEASE)  # dlv_1: leased, pending until its lease ends
    assert await store.queue_stats(at(5)) == QueueStats(3, 1, at(3), 1, 1)
    await record(store, "dlv_1", succeeded("dlv_1", "wh_1", 1, at(6)))
    await record(store, "dlv_2", DeliveryCancelled("dlv_2", "endpoint deleted", at(6)))
    assert await store.queue_stats(at(7)) == QueueStats(1, 0, None, 1, 1)
    assert await store.queue_stats(at(30)) == QueueStats(1, 1, at(20), 1, 1)
    assert claimed[0].delivery.delivery_id == "dlv_1"


async def test_held_and_finished_deliveries_are_never_claimed(store: Storage) -> None:
    """Only scheduled and retrying deliveries are handed out; a released one is due at its release."""
    await register(store, "wh_1")
    await publish(store, "evt_1", {"dlv_1": "wh_1"}, held=True)
    await publish(store, "evt_2", {"dlv_2": "wh_1", "dlv_3": "wh_1"})
    await record(store, "dlv_2", DeliveryHeld("dlv_2", at(1)))
    await record(store, "dlv_3", DeliveryCancelled("dlv_3", "endpoint deleted", at(1)))
    assert list(await store.claim(at(100), 10, LEASE)) == []
    await record(store, "dlv_1", DeliveryReleased("dlv_1", at(50)))
    claimed = await store.claim(at(100), 10, LEASE)
    assert [(d.delivery.delivery_id, d.delivery.status) for d in claimed] == [
        ("dlv_1", DeliveryStatus.SCHEDULED)
    ]


# --- concurrent appends (the SQL stores commit them together: group commit) ----------------------


async def test_concurrent_appends_each_commit_or_conflict_alone(store: Storage) -> None:
    """Appends in flight together each keep their own outcome: conflicting calls fail alone,
    naming their own streams, and write nothing; the others are all written, in call order."""
    await register(store, "wh_1", "wh_2")
    calls = [
        *(store.append(StreamAppend(f"wh_new_{n}", 0, (registered(f"wh_new_{n}"),))) for n in range(10)),
        store.append(StreamAppend("wh_1", 0, (registered("wh_1"),))),  # wh_1 exists
        store.append(StreamAppend("wh_2", 5, (EndpointEnabled("wh_2", at(1)),))),  # wh_2 is at 1
        store.append(  # all or nothing: wh_x must not be written because wh_1 conflicts
            StreamAppend("wh_x", 0, (registered("wh_x"),)),
            StreamAppend("wh_1", 3, (EndpointEnabled("wh_1", at(1)),)),
        ),
        store.append(StreamAppend("wh_2", 1, (EndpointDisabled("wh_2", DisableReason.MANUAL, at(2)),))),
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    conflicts = [r.streams for r in results if isinstance(r, ConcurrencyConflict)]
    positions = [r for r in results if isinstance(r, int)]
    assert conflicts == [("wh_1",), ("wh_2",), ("wh_1",)]
    assert positions == list(range(3, 14))  # one event each, in call order, after the two registrations
    assert [r.position for r in await store.read_all()] == list(range(1, 14))
    assert list(await store.read("wh_x")) == []
    assert await store.endpoint("wh_x") is None
    wh_2 = await store.endpoint("wh_2")
    assert wh_2 is not None
    assert (wh_2.version, wh_2.endpoint.status) == (2, EndpointStatus.DISABLED)
    assert sorted(await store.endpoints([f"wh_new_{n}" for n in range(10)])) == sorted(
        f"wh_new_{n}" for n in range(10)
    )


async def test_concurrent_appends_to_one_stream_follow_each_other(store: Storage) -> None:
    """Two appends to one stream in flight together: the second is checked against the version
    the first leaves, so a pair that expects 0 and 1 both succeed, and a pair that both expect 0
    has exactly one winner."""
    first, second = await asyncio.gather(
        store.append(StreamAppend("wh_1", 0, (registered("wh_1"),))),
        store.append(StreamAppend("wh_1", 1, (EndpointDisabled("wh_1", DisableReason.MANUAL, at(1)),))),
    )
    assert (first, second) == (1, 2)
    assert [r.version for r in await store.read("wh_1")] == [1, 2]
    results = await asyncio.gather(
        store.append(StreamAppend("wh_2", 0, (registered("wh_2"),))),
        store.append(StreamAppend("wh_2", 0, (registered("wh_2"),))),
        return_exceptions=True,
    )
    assert results[0] == 3
    assert isinstance(results[1], ConcurrencyConflict)
    assert results[1].streams == ("wh_2",)
    assert len(await store.read("wh_2")) == 1


async def test_concurrent_publishes_and_outcomes_mix(store: Storage) -> None:
    """Publishes (new streams) and outcomes (existing deliveries) in flight together all land,
    with their read models, as if they had been appended one by one."""
    await register(store, "wh_1")
    await publish(store, "evt_0", {f"dlv_0_{n}": "wh_1" for n in range(8)})
    claimed = await store.claim(T0, 100, LEASE)
    assert len(claimed) == 8
    outcomes = [
        store.append(
            StreamAppend(
                d.delivery.delivery_id, d.version, (succeeded(d.delivery.delivery_id, "wh_1", 1, at(1)),)
            )
        )
        for d in claimed
    ]
    publishes = [publish(store, f"evt_{n}", {f"dlv_{n}": "wh_1"}, when=at(2)) for n in range(1, 9)]
    await asyncio.gather(*outcomes, *publishes)
    views = await store.deliveries(ACCOUNT, limit=100)
    statuses = {v.delivery.delivery_id: v.delivery.status for v in views}
    assert statuses == {
        **{f"dlv_0_{n}": DeliveryStatus.SUCCEEDED for n in range(8)},
        **{f"dlv_{n}": DeliveryStatus.SCHEDULED for n in range(1, 9)},
    }
    assert [a.status_code for a in await store.attempts("dlv_0_3")] == [200]
    due = await store.claim(at(2), 100, LEASE)
    assert sorted(d.delivery.delivery_id for d in due) == [f"dlv_{n}" for n in range(1, 9)]
    assert {d.body for d in due} == {f'{{"id":"evt_{n}"}}' for n in range(1, 9)}
