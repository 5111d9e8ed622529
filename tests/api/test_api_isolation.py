"""Tenant isolation: one account's key can neither see nor change another's resources (404, not 403)."""

from __future__ import annotations

import re
from typing import Any

from api_helpers import DEAL, Api

from attribution_webhooks.app.api import create_app


def _alices_world(alice: Api) -> dict[str, str]:
    hook = alice.register()
    published = alice.post("/events", {"type": "deal.attributed", "data": DEAL, "id": "evt_alice"}).json()
    return {"webhook_id": hook["id"], "delivery_id": published["deliveryIds"][0], "event_id": published["id"]}


# The docs have no ids; the dashboard's pages take a session, not a key (tests/dashboard walks them).
_NOT_API = ("/docs", "/dashboard")


def _routes(api: Api) -> list[tuple[str, str]]:
    """Every (method, path template) of the app that takes an id."""
    app = create_app(api.runtime)
    routes = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", ())):
            if method in ("HEAD", "OPTIONS") or "{" not in route.path or route.path.startswith(_NOT_API):
                continue
            routes.append((method, route.path))
    return routes


def test_every_route_with_an_id_is_404_for_another_accounts_key(apis: tuple[Api, Api]) -> None:
    """Bob's key on every route that names one of Alice's ids gets 404, and Alice's data is unchanged."""
    alice, bob = apis
    ids = _alices_world(alice)
    before = alice.log_size()
    routes = _routes(alice)
    assert len(routes) == 14  # a new route with an id must be walked here too
    bodies: dict[str, Any] = {"PUT": {"events": ["partner.created"]}, "PATCH": {"description": "x"}}
    for method, template in routes:
        path = re.sub(r"\{(\w+):\w+\}", lambda m: ids[m.group(1)], template)
        params = {"since": "2024-01-01T00:00:00Z"} if path.endswith("/recover") else None
        response = bob.client.request(
            method, path, headers=bob.headers, json=bodies.get(method), params=params
        )
        assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
        assert alice.runtime.keys.accounts()  # the store still answers
    assert alice.log_size() == before
    assert alice.get(f"/webhooks/{ids['webhook_id']}").json()["events"] == ["deal.attributed"]


def test_lists_show_only_the_callers_resources(apis: tuple[Api, Api]) -> None:
    """Bob's lists are empty; his publishing reaches only his own webhooks; event ids are per account."""
    alice, bob = apis
    _alices_world(alice)
    assert bob.get("/webhooks").json()["data"] == []
    published = bob.post("/events", {"type": "deal.attributed", "data": DEAL, "id": "evt_alice"}).json()
    assert published["deliveryIds"] == []
    assert published["duplicate"] is False  # the same id in another account is another event
