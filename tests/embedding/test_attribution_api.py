"""The Attribution API example end to end: its HTTP API writes partners, touchpoints and deals,
and every event it emits reaches the guide's two receivers (the Python and the Node.js snippet),
which verify each signature; the payloads are the guide's, checked by the package's schemas."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from spec_receivers import SpecReceiver, spec_receiver
from sqlalchemy import select
from sqlalchemy.engine import URL

from attribution_api.app import create_app
from attribution_api.domain import AttributionService
from attribution_webhooks import Webhooks
from attribution_webhooks.adapters.payloads import check_event_data
from attribution_webhooks.adapters.sql.schema import published_events
from attribution_webhooks.core.catalog import EVENT_TYPES

SECRET = "attribution_example_secret_1"
CLOSE = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)


def _at(days_before: float) -> str:
    return (CLOSE - timedelta(days=days_before)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def hooks(database_url: str | URL) -> Iterator[Webhooks]:
    webhooks = Webhooks(database_url, mode="development", retry=[timedelta(seconds=1)])
    try:
        yield webhooks
    finally:
        webhooks.close()


def _published(hooks: Webhooks) -> dict[str, dict[str, Any]]:
    """Every event the example published, by id: its envelope as stored."""
    with hooks.engine.connect() as conn:
        rows = conn.execute(select(published_events.c.event_id, published_events.c.body)).all()
    return {row.event_id: json.loads(row.body) for row in rows}


def _wait_verified(receivers: list[SpecReceiver], expected: set[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(set(r.stats()["event_ids"]) >= expected for r in receivers):  # type: ignore[arg-type]
            return
        time.sleep(0.1)


def test_the_example_emits_the_guides_events_and_both_receivers_verify_every_one(hooks: Webhooks) -> None:
    """Partners created and changed, touchpoints tracked in a batch, deals closed by each model:
    the events are the guide's, with credits that sum to each amount, and the Python and Node.js
    receivers verify every one of them (nothing rejected)."""
    service = AttributionService(hooks, clock=lambda: CLOSE)
    with (
        spec_receiver("python", SECRET) as python,
        spec_receiver("node", SECRET) as node,
        TestClient(create_app(service)) as client,
    ):
        for receiver in (python, node):
            answer = client.post(
                "/webhooks", json={"url": receiver.url(), "events": list(EVENT_TYPES), "secret": SECRET}
            )
            assert answer.status_code == 201, answer.text

        ids = {}
        for name, kind in (("Acme Corp", "referral"), ("XYZ Inc", "reseller"), ("Initech", "affiliate")):
            answer = client.post("/partners", json={"name": name, "type": kind})
            assert answer.status_code == 201, answer.text
            ids[name] = answer.json()["id"]
        a, b, c = ids["Acme Corp"], ids["XYZ Inc"], ids["Initech"]

        renamed = client.patch(
            f"/partners/{a}", json={"name": "Acme Corporation", "status": "inactive", "type": "referral"}
        )
        assert renamed.json()["changes"] == {
            "name": {"old": "Acme Corp", "new": "Acme Corporation"},
            "status": {"old": "active", "new": "inactive"},
        }
        unchanged = client.patch(f"/partners/{a}", json={"name": "Acme Corporation"})
        assert unchanged.status_code == 200
        assert unchanged.json()["changes"] == {}
        retyped = client.patch(f"/partners/{b}", json={"type": "technology"})
        assert retyped.json()["changes"] == {"type": {"old": "reseller", "new": "technology"}}

        journey = [(a, 10), (b, 5), (c, 2), (a, 1)]
        tracked = [
            {"userId": "user_1", "partnerId": p, "type": "click", "timestamp": _at(d)} for p, d in journey
        ]
        tracked += [
            {"userId": "user_3", "partnerId": p, "type": "demo", "timestamp": _at(d)}
            for p, d in ((a, 14), (b, 7), (c, 0))
        ]
        answer = client.post("/tracked-events", json={"events": tracked})
        assert answer.status_code == 201
        assert len(answer.json()["ids"]) == 7

        expected = {
            "first_touch": [(a, 1000, 100)],
            "last_touch": [(a, 1000, 100)],
            "linear": [(a, 500, 50), (b, 250, 25), (c, 250, 25)],
            "position_based": [(a, 800, 80), (b, 100, 10), (c, 100, 10)],
        }
        deals = {}
        for model, credits in expected.items():
            deal = client.post(
                "/deals", json={"userId": "user_1", "amount": 1000, "model": model, "closedAt": _at(0)}
            ).json()
            assert [(s["partnerId"], s["credit"], s["percentage"]) for s in deal["attribution"]] == credits
            deals[model] = deal
        decayed = client.post(
            "/deals",
            json={
                "userId": "user_3",
                "amount": 7000,
                "model": "time_decay",
                "closedAt": _at(0),
                "halfLifeDays": 7,
            },
        ).json()
        assert [(s["partnerId"], s["credit"], s["percentage"]) for s in decayed["attribution"]] == [
            (a, 1000, 14.29),
            (b, 2000, 28.57),
            (c, 4000, 57.14),
        ]
        assert [s["partnerName"] for s in decayed["attribution"]] == [
            "Acme Corporation",
            "XYZ Inc",
            "Initech",
        ]
        nobody = client.post(
            "/deals", json={"userId": "user_without_touchpoints", "amount": 500, "model": "linear"}
        )
        assert nobody.status_code == 201
        assert nobody.json()["attribution"] == []

        published = _published(hooks)
        by_type: dict[str, list[dict[str, Any]]] = {}
        for envelope in published.values():
            check_event_data(envelope["type"], envelope["data"])
            by_type.setdefault(envelope["type"], []).append(envelope["data"])
        assert {t: len(v) for t, v in by_type.items()} == {
            "partner.created": 3,
            "partner.updated": 2,  # the PATCH that changed nothing published nothing
            "event.tracked": 7,
            "deal.attributed": 5,  # the deal nobody led to is not attributed
        }
        assert {"id", "name", "status", "changes"} == set(by_type["partner.updated"][0])
        for deal in by_type["deal.attributed"]:
            assert sum(s["credit"] for s in deal["attribution"]) == deal["amount"]
        assert deals["linear"] in by_type["deal.attributed"]
        _wait_verified([python, node], set(published))
        stats = [python.stats(), node.stats()]
    for seen in stats:
        assert seen["rejected"] == 0
        assert seen.get("errors", []) == []
        assert sorted(seen["event_ids"]) == sorted(published)  # type: ignore[type-var]


def test_bad_requests_are_problems_and_a_failed_batch_publishes_nothing(hooks: Webhooks) -> None:
    """Wrong fields are 422 problem details naming the field, unknown partners 404; a batch of
    touchpoints with one unknown partner records and publishes none of them."""
    service = AttributionService(hooks)
    with TestClient(create_app(service, deliver=False)) as client:
        partner = client.post("/partners", json={"name": "Acme Corp", "type": "referral"}).json()
        cases = [
            (client.post("/deals", json={"userId": "u", "amount": 10, "model": "bogus"}), 422, "model"),
            (client.post("/deals", json={"userId": "u", "amount": 0, "model": "linear"}), 422, "amount"),
            (client.post("/deals", json={"userId": "u", "amount": 2**53, "model": "linear"}), 422, "amount"),
            (client.post("/partners", json={"name": "", "type": "referral"}), 422, "name"),
            (
                client.post("/partners", json={"name": "X", "type": "referral", "status": "sleeping"}),
                422,
                "status",
            ),
            (client.patch(f"/partners/{partner['id']}", json={"colour": "red"}), 422, "colour"),
            (client.patch("/partners/partner_missing", json={"name": "X"}), 404, "partner_missing"),
            (
                client.post(
                    "/tracked-events", json={"events": [{"userId": "u", "partnerId": partner["id"]}]}
                ),
                422,
                "events[0].type",
            ),
        ]
        for answer, status, named in cases:
            assert answer.status_code == status, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert named in answer.json()["detail"]
        before = len(_published(hooks))
        batch = [
            {"userId": "u", "partnerId": partner["id"], "type": "click"},
            {"userId": "u", "partnerId": "partner_missing", "type": "click"},
        ]
        answer = client.post("/tracked-events", json={"events": batch})
        assert answer.status_code == 422
        assert "events[1].partnerId" in answer.json()["detail"]
        assert len(_published(hooks)) == before
        deal = client.post("/deals", json={"userId": "u", "amount": 100, "model": "linear"}).json()
        assert deal["attribution"] == []  # the first touchpoint of the failed batch was not kept
