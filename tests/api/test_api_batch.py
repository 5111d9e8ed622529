"""``POST /events/batch``: up to 1,000 events in one transaction, a result per event, all or nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_helpers import DEAL, Api, assert_problem

from attribution_webhooks.app.services import MAX_BATCH
from attribution_webhooks.core.samples import SAMPLE_DATA
from attribution_webhooks.core.wire import encode_json


def _deal(index: int, **extra: Any) -> dict[str, Any]:
    return {"type": "deal.attributed", "data": {**DEAL, "dealId": f"deal_{index}"}, **extra}


def _batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


def _deliveries(api: Api) -> int:
    with api.runtime.store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM deliveries").scalar_one())


def test_a_batch_answers_a_result_per_event_in_order(api: Api) -> None:
    """Each event gets its id and a delivery per subscribed webhook; the results keep the order sent."""
    first = api.register(url="https://a.example/h")
    api.register(url="https://b.example/h")
    api.register(url="https://p.example/h", events=["partner.created"])
    events = [
        _deal(0, id="evt_b0"),
        _deal(1),
        {"type": "partner.created", "data": SAMPLE_DATA["partner.created"]},
    ]
    response = api.post("/events/batch", _batch(*events))
    assert response.status_code == 202, response.text
    results = response.json()["events"]
    assert [len(r["deliveryIds"]) for r in results] == [2, 2, 1]
    assert results[0]["id"] == "evt_b0"
    assert results[1]["id"].startswith("evt_")
    assert not any(r["duplicate"] for r in results)
    event = api.get(f"/events/{results[1]['id']}").json()
    assert event["data"]["dealId"] == "deal_1"
    assert sorted(d["id"] for d in event["deliveries"]) == sorted(results[1]["deliveryIds"])
    assert {api.get(f"/deliveries/{d}").json()["webhookId"] for d in results[0]["deliveryIds"]} >= {
        first["id"]
    }


def test_an_id_repeated_in_a_later_batch_is_a_duplicate_stored_once(api: Api) -> None:
    """A batch that repeats an event of an earlier batch gets that event's deliveries, marked duplicate."""
    api.register()
    first = api.post("/events/batch", _batch(_deal(0, id="evt_x0"), _deal(1, id="evt_x1"))).json()["events"]
    size, deliveries = api.log_size(), _deliveries(api)
    again = api.post("/events/batch", _batch(_deal(1, id="evt_x1"), _deal(2, id="evt_x2")))
    assert again.status_code == 202, again.text
    repeat, new = again.json()["events"]
    assert repeat == {**first[1], "duplicate": True}
    assert (new["id"], new["duplicate"], len(new["deliveryIds"])) == ("evt_x2", False, 1)
    assert _deliveries(api) == deliveries + 1
    assert api.log_size() > size


def test_an_id_repeated_within_a_batch_is_one_event(api: Api) -> None:
    """The same id twice in one batch with the same content: one event, the second answered as a duplicate."""
    api.register()
    response = api.post("/events/batch", _batch(_deal(0, id="evt_twice"), _deal(0, id="evt_twice")))
    assert response.status_code == 202, response.text
    first, second = response.json()["events"]
    assert second == {**first, "duplicate": True}
    assert _deliveries(api) == 1


def test_an_id_repeated_within_a_batch_with_other_data_is_a_409_storing_nothing(api: Api) -> None:
    """Two contents under one id is a conflict naming the index, and the batch's other events are not stored."""
    api.register()
    size = api.log_size()
    response = api.post("/events/batch", _batch(_deal(0), _deal(1, id="evt_d"), _deal(2, id="evt_d")))
    assert_problem(response, 409, "events[2].id", "evt_d", "events[1]")
    assert api.log_size() == size


def test_an_id_published_before_with_other_data_is_a_409_storing_nothing(api: Api) -> None:
    """A repeat whose content differs from the stored event fails the whole batch."""
    api.register()
    api.post("/events", _deal(0, id="evt_old"))
    size, deliveries = api.log_size(), _deliveries(api)
    response = api.post("/events/batch", _batch(_deal(5), _deal(1, id="evt_old")))
    assert_problem(response, 409, "evt_old")
    assert (api.log_size(), _deliveries(api)) == (size, deliveries)


def test_every_wrong_field_is_named_with_its_index_and_nothing_is_stored(api: Api) -> None:
    """One 422 lists each wrong event's field as events[i].…; the valid events of the batch are not stored."""
    api.register()
    size = api.log_size()
    events = [
        _deal(0),
        {"type": "deal.attributed", "data": {**DEAL, "amount": "ten"}},
        _deal(2),
        {"type": "deal.nope", "data": {}},
        {"type": "partner.created", "data": DEAL},
    ]
    body = assert_problem(api.post("/events/batch", _batch(*events)), 422, "events[1].data.amount")
    fields = {error["field"] for error in body["errors"]}
    assert {"events[1].data.amount", "events[3].type", "events[4].data.id"} <= fields
    assert not any(field.startswith(("events[0]", "events[2]")) for field in fields)
    assert api.log_size() == size


@pytest.mark.parametrize(
    ("events", "fragments"),
    [
        ([{"type": "deal.attributed"}], ("events[0].data: required",)),
        ([{"type": "deal.attributed", "data": DEAL, "extra": 1}], ("events[0].extra: unknown field",)),
        ([{"type": "deal.attributed", "data": DEAL, "id": "123"}], ("events[0].id", "evt_")),
        ([_deal(0), {**_deal(1), "timestamp": "yesterday"}], ("events[1].timestamp",)),
        (
            [_deal(0), {"type": "deal.attributed", "data": {**DEAL, "amount": 2**60}}],
            ("events[1].data.amount", "2^53"),
        ),
        ([], ("events", "1 to 1,000")),
        ("not a list", ("events", "array")),
    ],
    ids=["missing-data", "unknown-field", "bad-id", "bad-timestamp", "unsafe-integer", "empty", "not-a-list"],
)
def test_bad_events_are_422s_naming_index_and_field(
    api: Api, events: Any, fragments: tuple[str, ...]
) -> None:
    """Each kind of wrong event is named by its index and field, and nothing is stored."""
    size = api.log_size()
    assert_problem(api.post("/events/batch", {"events": events}), 422, *fragments)
    assert api.log_size() == size


def test_more_than_the_limit_of_events_is_a_422_before_any_event_is_read(api: Api) -> None:
    """1,001 events are refused by their count alone (even though each one is wrong), naming events."""
    body = assert_problem(
        api.post("/events/batch", {"events": [{}] * (MAX_BATCH + 1)}), 422, "events", "1,001 events", "1,000"
    )
    assert [error["field"] for error in body["errors"]] == ["events"]


def test_the_limit_of_events_is_accepted(api: Api) -> None:
    """Exactly 1,000 events go in one request."""
    api.register()
    response = api.post("/events/batch", _batch(*(_deal(i) for i in range(MAX_BATCH))))
    assert response.status_code == 202, response.text
    assert len({r["id"] for r in response.json()["events"]}) == MAX_BATCH
    assert _deliveries(api) == MAX_BATCH


def test_a_body_over_the_batch_size_limit_is_a_413(api: Api) -> None:
    """The batch route takes 16 times the size limit of one event, and answers 413 beyond it."""
    limit = api.runtime.settings.max_body_size
    big = "x" * (limit - 2048)
    events = [_deal(i) | {"data": {**DEAL, "model": big}} for i in range(17)]
    assert_problem(api.post("/events/batch", _batch(*events)), 413, f"{16 * limit} bytes")


def test_one_event_over_the_size_limit_of_an_event_is_a_422(api: Api) -> None:
    """An event alone may be no larger than a POST /events body may be."""
    limit = api.runtime.settings.max_body_size
    events = [_deal(0), {"type": "deal.attributed", "data": {**DEAL, "model": "x" * limit}}]
    assert_problem(api.post("/events/batch", _batch(*events)), 422, "events[1].data", "at most")


@pytest.mark.parametrize("body", [b"", b"{", b"[]"], ids=["empty", "not-json", "not-an-object"])
def test_an_unreadable_body_is_a_problem(api: Api, body: bytes) -> None:
    """An empty or malformed body is a 400; JSON of the wrong shape a 422."""
    response = api.client.post(
        "/events/batch", content=body, headers={**api.headers, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_batch_needs_a_valid_key_before_its_body_is_read(api: Api) -> None:
    """Without a key the answer is 401, never a validation error."""
    response = api.client.post("/events/batch", json={"events": "wrong"}, headers={"X-API-Key": "nope"})
    assert_problem(response, 401, "X-API-Key")


def test_a_batch_is_published_to_its_own_account_only(apis: tuple[Api, Api]) -> None:
    """Bob's webhooks get nothing from Alice's batch, and Bob cannot read her events."""
    alice, bob = apis
    bob.register()
    alice.register()
    results = alice.post("/events/batch", _batch(_deal(0), _deal(1))).json()["events"]
    assert all(len(r["deliveryIds"]) == 1 for r in results)
    assert bob.get(f"/events/{results[0]['id']}").status_code == 404
    assert bob.get(f"/deliveries/{results[0]['deliveryIds'][0]}").status_code == 404


def test_the_openapi_document_describes_the_batch(api: Api) -> None:
    """The operation is documented with its body's limits, its result and its problems."""
    document = api.client.get("/docs/openapi.json").json()
    operation = document["paths"]["/events/batch"]["post"]
    assert {"202", "400", "401", "409", "413", "422"} <= set(operation["responses"])
    body = document["components"]["schemas"]["PublishBatch"]
    assert body["properties"]["events"]["maxItems"] == MAX_BATCH
    assert body["properties"]["events"]["minItems"] == 1
    assert "all of them" in body["description"]


def test_a_batch_may_not_publish_an_operational_type(api: Api) -> None:
    """Operational notices are the service's to publish (ADR 0017), in a batch as alone; the
    whole batch is refused and nothing is stored."""
    api.register()
    size = api.log_size()
    notice = {"type": "webhook.disabled", "data": {}}
    response = api.post("/events/batch", _batch(_deal(0), notice))
    assert response.status_code == 422, response.text
    assert "events[1].type" in response.text
    assert "only the service publishes it" in response.text
    assert api.log_size() == size


@pytest.mark.parametrize("amount", [10000, 10000.5, 10000.0, 0.0000001, 2**53 - 1])
def test_stored_bodies_are_canonical_whichever_encoder_wrote_them(api: Api, amount: float) -> None:
    """A body is the canonical text of its envelope (what JSON.stringify would print), by the
    batch route and the single one alike: whether msgspec wrote it or the core's walk did."""
    data = {**DEAL, "amount": amount}
    batch = api.post("/events/batch", _batch({"type": "deal.attributed", "data": data}))
    single = api.post("/events", {"type": "deal.attributed", "data": data})
    assert batch.status_code == single.status_code == 202, (batch.text, single.text)
    ids = [batch.json()["events"][0]["id"], single.json()["id"]]
    with api.runtime.store.engine.connect() as conn:
        for event_id in ids:
            body = conn.exec_driver_sql(
                "SELECT body FROM published_events WHERE event_id = ?", (event_id,)
            ).scalar_one()
            envelope = json.loads(body)
            assert body == encode_json(envelope)
            assert envelope["data"] == data
            assert list(envelope) == ["id", "type", "timestamp", "data"]
