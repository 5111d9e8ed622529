"""``Webhooks``, the embedding facade: endpoints, checked payloads, a blocking ``run()`` beside
synchronous publishers, and clear errors for settings that cannot work."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy

from attribution_webhooks import NewEvent, Webhooks
from attribution_webhooks.adapters.http import EgressMode, EgressSettings
from attribution_webhooks.adapters.payloads import InvalidPayload
from attribution_webhooks.app.worker import DispatchSettings
from attribution_webhooks.core.errors import NotFound, ValidationError
from receivers.scripted import ScriptedServer

DATA = {"id": "partner_abc", "name": "Acme Corp", "type": "referral", "status": "active"}
SECRET = "a_facade_secret_0123456789"


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hooks.sqlite3'}"


def test_endpoints_are_registered_updated_and_listed_per_account(tmp_path: Path) -> None:
    """``update`` changes only what it is given; ``webhooks`` lists the account's endpoints;
    another account sees none of them."""

    async def scenario(hooks: Webhooks) -> None:
        first = await hooks.register("http://127.0.0.1:9/a", ["deal.attributed"], description="first")
        second = await hooks.register("http://127.0.0.1:9/b", ["partner.created"])
        changed = await hooks.update(
            first.endpoint.endpoint_id, events=["deal.attributed", "partner.updated"]
        )
        assert changed.endpoint.event_types == ("deal.attributed", "partner.updated")
        assert changed.endpoint.url == "http://127.0.0.1:9/a"
        assert changed.endpoint.description == "first"
        listed = [v.endpoint.endpoint_id for v in await hooks.webhooks()]
        assert listed == [first.endpoint.endpoint_id, second.endpoint.endpoint_id]
        assert await hooks.webhooks(account="acct_other") == []
        with pytest.raises(NotFound):
            await hooks.update(first.endpoint.endpoint_id, url="http://127.0.0.1:9/c", account="acct_other")

    with Webhooks(_url(tmp_path), mode="development") as hooks:
        asyncio.run(scenario(hooks))


def test_payloads_are_checked_before_anything_is_stored(tmp_path: Path) -> None:
    """A wrong field is an InvalidPayload naming it (``events[i].data…`` in a batch), and
    nothing of the batch is published."""

    async def scenario(hooks: Webhooks) -> None:
        with pytest.raises(InvalidPayload) as one:
            await hooks.publish("partner.created", {**DATA, "name": 42})
        assert one.value.field == "data.name"
        batch = [NewEvent("partner.created", DATA, id="evt_fine"), NewEvent("partner.created", {"id": "x"})]
        with pytest.raises(InvalidPayload) as many:
            await hooks.publish_batch(batch)
        assert many.value.field.startswith("events[1].data")
        assert await hooks.service.ports.store.event(hooks.account, "evt_fine") is None

    with Webhooks(_url(tmp_path), mode="development") as hooks:
        asyncio.run(scenario(hooks))


def test_run_delivers_beside_synchronous_publishers_until_stopped(tmp_path: Path) -> None:
    """``run()`` in a thread (as a Flask app would start it), ``publish_sync`` from another: the
    event arrives at once (the dispatcher polls only every minute); setting ``stop`` ends it."""
    settings = DispatchSettings(poll_interval=timedelta(seconds=60))
    with (
        ScriptedServer.running() as receiver,
        Webhooks(_url(tmp_path), mode="development", dispatch=settings) as hooks,
    ):
        asyncio.run(hooks.register(receiver.url("/run"), ["partner.created"], secret=SECRET))
        stop = threading.Event()
        worker = threading.Thread(target=hooks.run, args=(stop,))
        worker.start()
        try:
            time.sleep(0.5)  # (publishing before the dispatcher starts would work as well)
            published = hooks.publish_sync("partner.created", DATA, id="evt_sync_1")
            for _ in range(200):
                if receiver.requests("/run"):
                    break
                time.sleep(0.05)
        finally:
            stop.set()
            worker.join(30)
        assert not worker.is_alive()
        [request] = receiver.requests("/run")
        assert json.loads(request.body)["id"] == published.event_id == "evt_sync_1"


def test_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    """A SQLite engine without the package's settings, egress in another mode than the
    webhooks, and (production) an http:// receiver are each a clear error."""
    plain = sqlalchemy.create_engine(_url(tmp_path))
    with pytest.raises(ValueError, match="create_engine"):
        Webhooks(plain)
    plain.dispose()
    with pytest.raises(ValueError, match="development"):
        Webhooks(_url(tmp_path), mode="production", egress=EgressSettings(mode=EgressMode.DEVELOPMENT))
    with Webhooks(_url(tmp_path)) as hooks, pytest.raises(ValidationError, match="https"):
        asyncio.run(hooks.register("http://127.0.0.1:9/x", ["deal.attributed"]))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:9/a",
        "https://0x7f000001/a",
        "https://127。0。0。1/a",
        "https://[::1]/a",
        "http://93.184.216.34/a",
    ],
)
def test_production_mode_refuses_internal_and_plain_http_targets_at_registration(
    tmp_path: Path, url: str
) -> None:
    """The facade checks URLs as the API does (no DNS lookups: address literals only), at
    registration and on update, and stores nothing it refused."""

    async def scenario(hooks: Webhooks) -> None:
        with pytest.raises(ValidationError) as refused:
            await hooks.register(url, ["deal.attributed"])
        assert refused.value.field == "url"
        assert await hooks.webhooks() == []
        public = await hooks.register("https://93.184.216.34/hook", ["deal.attributed"])  # never sent to
        with pytest.raises(ValidationError):
            await hooks.update(public.endpoint.endpoint_id, url=url)
        [kept] = await hooks.webhooks()
        assert kept.endpoint.url == "https://93.184.216.34/hook"

    with Webhooks(_url(tmp_path), mode="production") as hooks:
        asyncio.run(scenario(hooks))


def test_the_delivery_log_is_read_per_account(tmp_path: Path) -> None:
    """The facade reads through the use cases: another account's delivery is as unknown as a
    made-up id, and the list pages past its first page (more endpoints than one page holds)."""

    async def scenario(hooks: Webhooks) -> None:
        await hooks.register("http://127.0.0.1:9/a", ["partner.created"])
        published = await hooks.publish("partner.created", DATA, id="evt_facade_1")
        [delivery_id] = published.delivery_ids
        assert await hooks.attempts(delivery_id) == []  # nothing sent: no dispatcher runs
        with pytest.raises(NotFound):
            await hooks.attempts(delivery_id, account="acct_other")
        with pytest.raises(NotFound):
            await hooks.attempts("dlv_made_up")
        assert await hooks.deliveries(event_id="evt_facade_1", account="acct_other") == []
        assert [v.delivery.delivery_id for v in await hooks.deliveries(event_id="evt_facade_1")] == [
            delivery_id
        ]
        with pytest.raises(NotFound):
            await hooks.deliveries(webhook_id="wh_made_up")

    with Webhooks(_url(tmp_path), mode="development") as hooks:
        asyncio.run(scenario(hooks))


def test_webhooks_lists_every_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("attribution_webhooks.app.embedding._PAGE", 2)

    async def scenario(hooks: Webhooks) -> None:
        made = [await hooks.register(f"http://127.0.0.1:9/{n}", ["partner.created"]) for n in range(5)]
        listed = [v.endpoint.endpoint_id for v in await hooks.webhooks()]
        assert listed == [v.endpoint.endpoint_id for v in made]

    with Webhooks(_url(tmp_path), mode="development") as hooks:
        asyncio.run(scenario(hooks))


def test_the_policies_are_set_through_the_facade(tmp_path: Path) -> None:
    """Ordered delivery and the flow policies, as the API takes them; bad values are refused."""

    async def scenario(hooks: Webhooks) -> None:
        view = await hooks.register(
            "http://127.0.0.1:9/a",
            ["deal.attributed"],
            ordered=True,
            rate_limit=5,
            circuit_breaker_threshold=3,
        )
        endpoint = view.endpoint
        assert (endpoint.ordered, endpoint.rate_limit, endpoint.circuit_breaker_threshold) == (True, 5, 3)
        changed = await hooks.update(endpoint.endpoint_id, ordered=False, rate_limit=0)
        assert (changed.endpoint.ordered, changed.endpoint.rate_limit) == (False, None)
        with pytest.raises(ValidationError):
            await hooks.register("http://127.0.0.1:9/b", ["deal.attributed"], rate_limit=-1)

    with Webhooks(_url(tmp_path), mode="development") as hooks:
        asyncio.run(scenario(hooks))
