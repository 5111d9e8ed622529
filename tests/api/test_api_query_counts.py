"""The list endpoints cost a fixed number of queries per page, whatever the page size.

Two counts: every call the use cases make on the storage port (a counting wrapper over the
store), and every SQL statement SQLAlchemy sends for them (its ``before_cursor_execute`` event;
the store's point reads by id run on its own DBAPI connections, outside that count, and are
counted as port calls).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_helpers import DEAL, Api, accounts, runtime_for
from litestar.testing import TestClient
from sqlalchemy import event

from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.services import WebhookService
from attribution_webhooks.app.settings import Mode
from attribution_webhooks.core.events import AttemptFailed
from attribution_webhooks.core.ports import StreamAppend


class CountingStore:
    """The store, counting each port method called through it."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await method(*args, **kwargs)

        return counted


@pytest.fixture
def counted(migrated_template: Path, tmp_path: Path) -> Iterator[tuple[Api, CountingStore, list[str]]]:
    """An API whose use cases go through a counting store, and the SQL statements it sends."""
    runtime = runtime_for(migrated_template, tmp_path, Mode.DEVELOPMENT)
    ports = runtime.service.ports
    store = CountingStore(ports.store)
    runtime.service = WebhookService(
        store, ports.clock, ports.ids, ports.random, ports.settings, ports.notices
    )  # type: ignore[arg-type]
    statements: list[str] = []

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(runtime.store.engine, "before_cursor_execute", on_statement)
    try:
        with TestClient(create_app(runtime)) as client:
            alice, _ = accounts(runtime, client)
            yield alice, store, statements
    finally:
        event.remove(runtime.store.engine, "before_cursor_execute", on_statement)
        runtime.close()


@contextmanager
def counting(store: CountingStore, statements: list[str]) -> Iterator[Counter[str]]:
    store.calls.clear()
    statements.clear()
    found: Counter[str] = Counter()
    yield found
    found.update(store.calls)
    found["sql"] = sum(1 for statement in statements if statement != "BEGIN")


def fail_every_delivery(api: Api, delivery_ids: list[str]) -> None:
    """Two failed attempts per delivery, so that every row has attempts to fetch."""
    store = api.runtime.store
    when = datetime(2024, 1, 20, 15, tzinfo=UTC)

    async def record() -> None:
        for delivery_id in delivery_ids:
            view = await store.delivery(delivery_id)
            assert view is not None
            attempts = tuple(
                AttemptFailed(delivery_id, view.delivery.endpoint_id, n, when, 5.0, 500, None, "HTTP 500", "")
                for n in (1, 2)
            )
            await store.append(StreamAppend(delivery_id, view.version, attempts))

    asyncio.run(record())


def test_delivery_log_pages_cost_the_same_for_1_and_100_rows(
    counted: tuple[Api, CountingStore, list[str]],
) -> None:
    """GET /webhooks/{id}/deliveries: one endpoint check, one page query, one attempts query."""
    api, store, statements = counted
    hook = api.register()
    ids = [
        api.post("/events", {"type": "deal.attributed", "data": DEAL}).json()["deliveryIds"][0]
        for _ in range(101)
    ]
    fail_every_delivery(api, ids)
    counts = []
    for size in (1, 100):
        with counting(store, statements) as found:
            page = api.get(f"/webhooks/{hook['id']}/deliveries", params={"limit": size}).json()
        assert len(page["data"]) == size
        assert all(len(delivery["attempts"]) == 2 for delivery in page["data"])
        counts.append(found)
    assert counts[0] == counts[1]
    assert counts[0] == Counter({"endpoint": 1, "deliveries": 1, "attempts_of": 1, "sql": 2})


def test_an_event_with_100_deliveries_costs_what_one_with_1_costs(
    counted: tuple[Api, CountingStore, list[str]],
) -> None:
    """GET /events/{id}: the event, its deliveries and all their attempts in three queries."""
    api, store, statements = counted
    counts = []
    for fan_out in (1, 100):
        hooks = [
            api.register(f"https://receiver.example/{fan_out}/{n}", ["partner.created"])
            for n in range(fan_out)
        ]
        published = api.post(
            "/events",
            {"type": "partner.created", "data": {"id": "p", "name": "P", "type": "r", "status": "a"}},
        ).json()
        fail_every_delivery(api, published["deliveryIds"])
        with counting(store, statements) as found:
            body = api.get(f"/events/{published['id']}").json()
        assert len(body["deliveries"]) == fan_out
        assert all(len(delivery["attempts"]) == 2 for delivery in body["deliveries"])
        counts.append(found)
        for hook in hooks:  # the next round's event goes to its own webhooks only
            assert api.delete(f"/webhooks/{hook['id']}").status_code == 204
    assert counts[0] == counts[1]
    assert counts[0] == Counter({"event": 1, "deliveries": 1, "attempts_of": 1, "sql": 3})


def test_webhook_pages_cost_one_query_for_1_and_100_rows(
    counted: tuple[Api, CountingStore, list[str]],
) -> None:
    """GET /webhooks: one query whatever the page size."""
    api, store, statements = counted
    for n in range(101):
        api.register(url=f"https://receiver.example/{n}")
    counts = []
    for size in (1, 100):
        with counting(store, statements) as found:
            page = api.get("/webhooks", params={"limit": size}).json()
        assert len(page["data"]) == size
        assert page["nextCursor"]
        counts.append(found)
    assert counts[0] == counts[1]
    assert counts[0] == Counter({"list_endpoints": 1, "sql": 1})
