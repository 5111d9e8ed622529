"""``POST /events`` (the ingest path), ``GET /events/{id}`` and the catalog."""

from __future__ import annotations

import json

from api_helpers import DEAL, Api, assert_problem

from attribution_webhooks.adapters.payloads import check_event_data
from attribution_webhooks.core.catalog import EVENT_TYPES
from attribution_webhooks.core.operational import OPERATIONAL_TYPES
from attribution_webhooks.core.samples import SAMPLE_DATA


def test_publish_answers_202_with_the_event_id_and_a_delivery_per_subscriber(api: Api) -> None:
    """Each webhook subscribed to the type gets one delivery; others get none."""
    deals = api.register(events=["deal.attributed"])
    api.register(url="https://partners.example/h", events=["partner.created"])
    response = api.post("/events", {"type": "deal.attributed", "data": DEAL})
    assert response.status_code == 202
    body = response.json()
    assert body["id"].startswith("evt_")
    assert len(body["deliveryIds"]) == 1
    assert body["duplicate"] is False
    delivery = api.get(f"/deliveries/{body['deliveryIds'][0]}").json()
    assert delivery["webhookId"] == deals["id"]


def test_the_same_event_id_twice_is_stored_and_delivered_once(api: Api) -> None:
    """Publishing is idempotent on id: the second call reports the first's deliveries."""
    api.register()
    event = {"id": "evt_123", "type": "deal.attributed", "timestamp": "2024-01-20T15:00:00Z", "data": DEAL}
    first = api.post("/events", event).json()
    size = api.log_size()
    again = api.post("/events", event)
    assert again.status_code == 202
    assert again.json() == {**first, "duplicate": True}
    assert api.log_size() == size


def test_the_same_event_id_with_other_data_is_a_409(api: Api) -> None:
    """Reusing an id for different content is a conflict, and nothing is stored."""
    api.post("/events", {"id": "evt_1", "type": "deal.attributed", "data": DEAL})
    size = api.log_size()
    other = {**DEAL, "amount": 1}
    assert_problem(
        api.post("/events", {"id": "evt_1", "type": "deal.attributed", "data": other}), 409, "evt_1"
    )
    assert api.log_size() == size


def test_an_event_reads_back_as_its_receivers_get_it(api: Api) -> None:
    """GET /events/{id} shows type, timestamp, data exactly as sent, and the deliveries."""
    api.register()
    data = {**DEAL, "attribution": [{**DEAL["attribution"][0], "partnerName": "Åcme Çorp ✓"}]}  # type: ignore[index]
    published = api.post(
        "/events", {"type": "deal.attributed", "data": data, "timestamp": "2024-01-20T16:00:00+01:00"}
    ).json()
    event = api.get(f"/events/{published['id']}").json()
    assert event["type"] == "deal.attributed"
    assert event["timestamp"] == "2024-01-20T15:00:00Z"
    assert event["data"] == data
    assert [d["id"] for d in event["deliveries"]] == published["deliveryIds"]


def test_every_sample_of_the_catalog_is_accepted(api: Api) -> None:
    """The spec's example data of each type passes the type's schema."""
    for event_type in EVENT_TYPES:
        response = api.post("/events", {"type": event_type, "data": SAMPLE_DATA[event_type]})
        assert response.status_code == 202, response.text


def test_event_types_lists_the_catalog_with_schemas_and_examples(api: Api) -> None:
    """GET /event-types names the spec's four types first, each with a camelCase JSON Schema and
    the spec's example, then the operational types, marked as such."""
    body = api.get("/event-types").json()
    by_type = {item["type"]: item for item in body["data"]}
    assert list(by_type) == [*EVENT_TYPES, *OPERATIONAL_TYPES]
    assert [t for t, item in by_type.items() if item["operational"]] == list(OPERATIONAL_TYPES)
    deal = by_type["deal.attributed"]
    assert deal["example"] == SAMPLE_DATA["deal.attributed"]
    assert set(deal["schema"]["required"]) == {"dealId", "amount", "closedAt", "model", "attribution"}
    assert deal["schema"]["properties"]["attribution"]["items"] == {"$ref": "#/$defs/AttributionShare"}
    json.dumps(deal["schema"])


def test_openapi_document_and_docs_page_come_from_the_handler_types(api: Api) -> None:
    """The OpenAPI document names camelCase properties and documents each type with its payload."""
    document = api.client.get("/docs/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "standardWebhooks" in schemas["NewWebhook"]["properties"]
    assert schemas["NewWebhook"]["required"] == ["url", "events"]
    variants = schemas["PublishEvent"]["oneOf"]
    assert [v["properties"]["type"]["enum"] for v in variants] == [[t] for t in EVENT_TYPES]
    refs = [v["properties"]["data"]["$ref"] for v in variants]
    assert refs == [
        f"#/components/schemas/{name}"
        for name in ("DealAttributed", "PartnerCreated", "PartnerUpdated", "EventTracked")
    ]
    assert "dealId" in schemas["DealAttributed"]["properties"]
    assert document["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert "/webhooks/{webhook_id}" in document["paths"]
    assert api.client.get("/docs").status_code == 200


def test_health_and_readiness_need_no_key(api: Api) -> None:
    """/healthz and /readyz answer without authentication."""
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}


def test_operational_types_are_listed_with_their_schema(api: Api) -> None:
    """Each operational type has a camelCase schema and an example that passes it."""
    by_type = {item["type"]: item for item in api.get("/event-types").json()["data"]}
    exhausted = by_type["delivery.exhausted"]
    assert exhausted["operational"] is True
    assert "deliveryId" in exhausted["schema"]["properties"]
    assert by_type["webhook.disabled"]["schema"]["properties"]["reason"]["enum"] == ["manual", "failing"]
    for event_type in OPERATIONAL_TYPES:
        check_event_data(event_type, by_type[event_type]["example"])


def test_a_webhook_subscribes_to_operational_types_but_nobody_publishes_them(api: Api) -> None:
    """POST /webhooks accepts an operational type; POST /events refuses one with a problem naming it."""
    created = api.post(
        "/webhooks",
        {"url": "https://ops.example/hooks", "events": ["delivery.exhausted", "webhook.disabled"]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["events"] == ["delivery.exhausted", "webhook.disabled"]
    refused = api.post("/events", {"type": "webhook.disabled", "data": {}})
    assert refused.status_code == 422, refused.text
    assert "only the service publishes it" in refused.json()["detail"]
