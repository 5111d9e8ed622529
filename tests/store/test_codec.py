"""Events in the log: tagged by type and schema version, aware UTC times, old rows upcast on load."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert, select

from attribution_webhooks.adapters.sql import open_store
from attribution_webhooks.adapters.sql.codec import (
    REGISTRY,
    EventCodec,
    EventType,
    StoredEvent,
    decode_endpoint,
    encode_endpoint,
)
from attribution_webhooks.adapters.sql.schema import events
from attribution_webhooks.core.endpoint import Endpoint
from attribution_webhooks.core.events import (
    DeliveryScheduled,
    EndpointRegistered,
    EndpointUpdated,
    EventPublished,
    RedeliveryRequested,
    event_stream,
)
from attribution_webhooks.core.ports import StreamAppend

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)

# The v1 shape this test pretends EndpointRegistered once had: ``target`` for the URL, and no
# ``standard_webhooks`` (everything was signed the spec's way).
OLD_ROW = {
    "endpoint_id": "wh_old",
    "account_id": "acct_1",
    "target": "https://old.example/hook",
    "event_types": ["deal.attributed"],
    "secret": "s3cret-s3cret-XYZ",
    "description": "",
    "registered_at": "2024-01-20T15:00:00+00:00",
}


def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    upgraded = {key: value for key, value in payload.items() if key != "target"}
    return {**upgraded, "url": payload["target"], "standard_webhooks": False}


V2_CODEC = EventCodec(
    REGISTRY.replace(EventType("endpoint.registered", EndpointRegistered, 2, {1: _v1_to_v2}))
)


def test_rows_are_tagged_with_type_and_schema_version(sqlite_url: str) -> None:
    """A stored event is its registered name (not its class name), its payload version, and JSON with UTC times."""
    store = open_store(sqlite_url, inline=True)
    published = EventPublished("evt_1", "acct_1", "deal.attributed", "{}", T0, T0 + timedelta(seconds=1))
    asyncio.run(store.append(StreamAppend(event_stream("acct_1", "evt_1"), 0, (published,))))
    with store.engine.connect() as conn:
        row = conn.execute(select(events)).one()
    store.close()
    assert (row.event_type, row.schema_version, row.stream_id, row.version) == (
        "event.published",
        1,
        "event:acct_1:evt_1",
        1,
    )
    assert json.loads(row.data)["published_at"] == "2024-01-20T15:00:01+00:00"


async def test_an_old_version_row_still_loads_through_its_upcaster(sqlite_url: str) -> None:
    """A v1 row of an event now at v2 is upcast on read, and projects like a new one."""
    store = open_store(sqlite_url, codec=V2_CODEC)
    try:
        with store.engine.begin() as conn:
            row = {"position": 1, "stream_id": "wh_old", "version": 1, "event_type": "endpoint.registered"}
            conn.execute(insert(events), {**row, "schema_version": 1, "data": json.dumps(OLD_ROW)})
        [recorded] = await store.read("wh_old")
        url, secret = "https://old.example/hook", "s3cret-s3cret-XYZ"
        assert recorded.event == EndpointRegistered(
            "wh_old", "acct_1", url, ("deal.attributed",), secret, "", False, T0
        )
        assert store.rebuild_read_models() == 1
        view = await store.endpoint("wh_old")
        assert view is not None
        assert view.endpoint.url == "https://old.example/hook"
    finally:
        store.close()


def test_rows_the_code_cannot_read_fail_loudly() -> None:
    """A row newer than the code, or an old one without an upcaster, is an error, not a guess."""
    data = json.dumps(OLD_ROW)
    with pytest.raises(ValueError, match="newer than this code"):
        EventCodec().decode(StoredEvent("endpoint.registered", 2, data))
    with pytest.raises(ValueError, match="no upcaster from v1"):
        REGISTRY.replace(EventType("endpoint.registered", EndpointRegistered, 3, {2: _v1_to_v2}))
    with pytest.raises(ValueError, match="unknown event type"):
        EventCodec().decode(StoredEvent("endpoint.vanished", 1, "{}"))
    with pytest.raises(ValueError, match="unknown event type 'EndpointRegistered'"):
        EventCodec().decode(StoredEvent("EndpointRegistered", 1, data))  # class names are not names


async def test_naive_datetimes_are_refused_and_nothing_is_written(sqlite_url: str) -> None:
    """A naive datetime in an event is an error; times in other zones come back as the same instant in UTC."""
    store = open_store(sqlite_url)
    try:
        naive = EventPublished("evt_1", "acct_1", "deal.attributed", "{}", T0, datetime(2024, 1, 20, 15, 0))  # noqa: DTZ001
        with pytest.raises(ValueError, match="naive"):
            await store.append(StreamAppend(event_stream("acct_1", "evt_1"), 0, (naive,)))
        assert list(await store.read_all()) == []
        with pytest.raises(ValueError, match="naive"):
            await store.claim(datetime(2024, 1, 20, 15, 0), 10, timedelta(seconds=60))  # noqa: DTZ001
        zoned = T0.astimezone(timezone(timedelta(hours=-5)))
        aware = EventPublished("evt_1", "acct_1", "deal.attributed", "{}", zoned, zoned)
        await store.append(StreamAppend(event_stream("acct_1", "evt_1"), 0, (aware,)))
        view = await store.event("acct_1", "evt_1")
        assert view is not None
        assert view.published_at == T0
        assert view.published_at.tzinfo is UTC
    finally:
        store.close()


def test_rows_written_before_ordered_delivery_still_load() -> None:
    """Payloads and endpoint states stored before the ``ordered`` fields existed load with them
    false (ADR 0016): no new schema version, no upcaster, nothing rewritten."""
    codec = EventCodec()
    t0 = T0.isoformat()

    def old(name: str, payload: dict[str, object]) -> object:
        return codec.decode(StoredEvent(name, 1, json.dumps(payload)))

    scheduled = old(
        "delivery.scheduled",
        {
            "delivery_id": "dlv_1",
            "account_id": "acct_1",
            "endpoint_id": "wh_1",
            "event_id": "evt_1",
            "event_type": "deal.attributed",
            "scheduled_at": t0,
            "held": False,
            "test": False,
        },
    )
    assert scheduled == DeliveryScheduled("dlv_1", "acct_1", "wh_1", "evt_1", "deal.attributed", T0)
    assert old("delivery.redelivery_requested", {"delivery_id": "dlv_1", "requested_at": t0}) == (
        RedeliveryRequested("dlv_1", T0, ordered=False)
    )
    assert old("endpoint.updated", {"endpoint_id": "wh_1", "updated_at": t0, "description": "x"}) == (
        EndpointUpdated("wh_1", T0, description="x")
    )
    state = json.loads(encode_endpoint(Endpoint(endpoint_id="wh_1", ordered=True)))
    del state["ordered"]
    assert decode_endpoint(json.dumps(state)) == Endpoint(endpoint_id="wh_1")
    assert EndpointRegistered("wh_1", "a", "u", (), "s", "", False, T0).ordered is False
