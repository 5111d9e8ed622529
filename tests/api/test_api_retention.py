"""What the API says about history the retention policy removed (ADR 0018): 410 with a detail."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import attrs
from api_helpers import DEAL, Api, assert_problem

from attribution_webhooks.adapters.sql import open_store

_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz")


def ulid_at(prefix: str, when: datetime) -> str:
    """An id as ``UlidGenerator`` would have made it at ``when``."""
    value = (int(when.timestamp() * 1000) << 80) | 12345
    text = base64.b32encode(value.to_bytes(16, "big"))[:26].translate(_TO_CROCKFORD)
    return f"{prefix}_{text.decode('ascii')}"


def newest(api: Api) -> None:
    """Publish an event no webhook takes: the log's newest, which retention always keeps."""
    response = api.post("/events", {"type": "deal.attributed", "data": DEAL})
    assert response.status_code == 202, response.text


def purge_everything(api: Api) -> None:
    """Run retention with a horizon in the future, on a second connection to the database."""
    store = open_store(api.runtime.settings.database_url, inline=True)
    now = datetime.now(UTC)
    try:
        asyncio.run(store.purge_events(now + timedelta(days=1), now, None, 100))
    finally:
        store.close()


def test_a_purged_event_is_410_gone_saying_why(api: Api) -> None:
    """An event removed by retention (a client-chosen id, not a ULID) answers 410 naming the
    policy and its age; the event's delivery was final (its webhook deleted)."""
    hook = api.register()
    response = api.post("/events", {"id": "evt_order-42", "type": "deal.attributed", "data": DEAL})
    assert response.status_code == 202, response.text
    published = response.json()
    assert api.delete(f"/webhooks/{hook['id']}").status_code == 204
    newest(api)
    purge_everything(api)
    body = assert_problem(
        api.get("/events/evt_order-42"), 410, "'evt_order-42'", "removed", "retention policy", "30 days"
    )
    assert body["type"].endswith(":purged")
    assert body["title"] == "Gone"
    assert published["deliveryIds"]


def test_another_accounts_purged_event_is_404(apis: tuple[Api, Api]) -> None:
    """A tombstone belongs to its account: another account still gets 404."""
    alice, bob = apis
    alice.post("/events", {"id": "evt_order-7", "type": "deal.attributed", "data": DEAL})
    newest(alice)
    purge_everything(alice)
    assert_problem(alice.get("/events/evt_order-7"), 410)
    assert_problem(bob.get("/events/evt_order-7"), 404, "not found")


def test_an_unknown_delivery_older_than_the_age_is_410(api: Api) -> None:
    """A delivery id made before the retention horizon and not found was removed: 410; a recent
    unknown one is 404, and so is an old one when history is kept forever."""
    old = ulid_at("dlv", datetime.now(UTC) - timedelta(days=31))
    assert_problem(api.get(f"/deliveries/{old}"), 410, old, "retention policy", "30 days")
    assert_problem(api.post(f"/deliveries/{old}/retry"), 410, "retention policy")
    recent = ulid_at("dlv", datetime.now(UTC) - timedelta(days=29))
    assert_problem(api.get(f"/deliveries/{recent}"), 404, "not found")
    api.runtime.settings = attrs.evolve(api.runtime.settings, retention_age=timedelta(0))
    assert_problem(api.get(f"/deliveries/{old}"), 404, "not found")


def test_an_unknown_event_is_still_404(api: Api) -> None:
    """Without a tombstone, an unknown event id is 404 as before."""
    assert_problem(api.get("/events/evt_never"), 404, "not found")
