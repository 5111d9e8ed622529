"""The dashboard's banner (ADR 0017): webhooks failing, disabled, deliveries exhausted in 24 h."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from dashboard_helpers import User

from attribution_webhooks.core import delivery as dlv
from attribution_webhooks.core.outcomes import HttpResponse
from attribution_webhooks.core.ports import StreamAppend
from attribution_webhooks.core.samples import SAMPLE_DATA


def _exhaust(user: User, delivery_id: str) -> None:
    """Record failed attempts on ``delivery_id`` until it has failed its last retry."""
    store, retry = user.runtime.store, user.runtime.service.ports.settings.retry

    async def fail_all() -> None:
        for attempt in range(1, retry.max_attempts + 1):
            view = await store.delivery(delivery_id)
            assert view is not None
            now = datetime.now(UTC) + timedelta(seconds=attempt)
            outcome = HttpResponse(500, timedelta(milliseconds=5), "down")
            events = dlv.decide(dlv.RecordOutcome(attempt, now, outcome, now), view.delivery, retry)
            await store.append(StreamAppend(delivery_id, view.version, tuple(events)))

    asyncio.run(fail_all())


def test_the_banner_counts_what_needs_attention_with_links(users: tuple[User, User]) -> None:
    """Quiet at first; then one failing webhook, one disabled and one exhausted delivery, each
    linked; another account sees none of it."""
    alice, bob = users
    alice.sign_in()
    bob.sign_in()
    assert "Needs attention" not in alice.get("/dashboard/banner").text
    assert 'hx-get="/dashboard/banner"' in alice.get("/dashboard/webhooks").text
    webhooks = []
    for url in ("https://a.example/h", "https://b.example/h"):
        made = alice.api("POST", "/webhooks", {"url": url, "events": ["deal.attributed"]})
        assert made.status_code == 201, made.text
        webhooks.append(made.json()["id"])
    assert alice.api("POST", f"/webhooks/{webhooks[1]}/disable").status_code == 200
    published = alice.api(
        "POST", "/events", {"type": "deal.attributed", "data": SAMPLE_DATA["deal.attributed"]}
    )
    assert published.status_code == 202, published.text
    live = [
        d
        for d in published.json()["deliveryIds"]
        if alice.api("GET", f"/deliveries/{d}").json()["status"] != "held"
    ]
    [delivery_id] = live
    _exhaust(alice, delivery_id)
    text = re.sub(r"\s+", " ", alice.get("/dashboard/banner").text)
    assert '<a href="/dashboard/webhooks">1 webhook failing</a>' in text
    assert '<a href="/dashboard/webhooks">1 disabled</a>' in text
    assert '<a href="/dashboard/deliveries?status=failed">1 delivery exhausted in the last 24 h</a>' in text
    assert "Needs attention" not in bob.get("/dashboard/banner").text
