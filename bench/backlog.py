"""A large backlog of pending deliveries, made in seconds with bulk SQL instead of hours of appends.

``fill(url, base_url, deliveries, endpoints)`` registers ``endpoints`` endpoints and publishes one
event to them through the real service (so the store writes every row the way it always does),
then copies that event and its deliveries with ``INSERT … SELECT`` until the store holds
``deliveries`` pending deliveries: for copy n, the event log gets the ``EventPublished`` and the
``DeliveryScheduled`` events (positions continuing the log, gapless), ``published_events`` the
body and ``deliveries`` the queue rows, each a copy of the template's with the ids replaced. So
the result is what publishing ``deliveries / endpoints`` events would have written, which
``rebuild_read_models`` can check (the smoke test does).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text

from attribution_webhooks.adapters.sql import SqlStore, open_store
from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator
from attribution_webhooks.app.services import NewEvent, ServiceSettings, WebhookService
from attribution_webhooks.core.endpoint import EndpointRules

from .clients import SECRET
from .engine import ACCOUNT, EVENT_TYPE, event_data

__all__ = ["fill"]

_TEMPLATE = "bench_backlog_template"


async def _template(store: SqlStore, base_url: str, endpoints: int) -> str:
    service = WebhookService(
        store,
        SystemClock(),
        UlidGenerator(),
        SystemRandom(),
        ServiceSettings(endpoint_rules=EndpointRules(require_https=False)),
    )
    for index in range(endpoints):
        await service.register_endpoint(ACCOUNT, f"{base_url}/q/{index:04d}", [EVENT_TYPE], secret=SECRET)
    published = await service.publish(ACCOUNT, NewEvent(EVENT_TYPE, event_data()))
    return published.event_id


def _dialect_sql(sqlite: bool) -> dict[str, str]:
    if sqlite:
        return {
            "series": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :copies) ",
            "from": "n",
            "evt": "printf('evt_bulk_%09d', n.i)",
            "dlv": "printf('dlv_bulk_%09d_%04d', n.i, t.j)",
        }
    return {
        "series": "",
        "from": "generate_series(1, :copies) AS n(i)",
        "evt": "('evt_bulk_' || lpad(n.i::text, 9, '0'))",
        "dlv": "('dlv_bulk_' || lpad(n.i::text, 9, '0') || '_' || lpad(t.j::text, 4, '0'))",
    }


def _copy(store: SqlStore, event_id: str, copies: int) -> None:
    sql = _dialect_sql(store.engine.dialect.name == "sqlite")
    stream = f"event:{ACCOUNT}:{event_id}"
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            # A page cache that holds the indexes being filled: without it SQLite spills and
            # rereads pages for each of the million rows (85 s instead of about 23 here).
            conn.exec_driver_sql("PRAGMA cache_size = -1000000")
        base = conn.execute(text("SELECT max(position) FROM events")).scalar_one()
        published = conn.execute(
            text("SELECT position FROM events WHERE stream_id = :s"), {"s": stream}
        ).scalar_one()
        scheduled = conn.execute(
            text("SELECT stream_id FROM events WHERE position > :p ORDER BY position"), {"p": published}
        ).all()
        stride = 1 + len(scheduled)
        conn.execute(text(f"CREATE TABLE {_TEMPLATE} (j INTEGER PRIMARY KEY, delivery_id VARCHAR(160))"))
        conn.execute(
            text(f"INSERT INTO {_TEMPLATE} (j, delivery_id) VALUES (:j, :d)"),
            [{"j": j, "d": row.stream_id} for j, row in enumerate(scheduled, start=1)],
        )
        evt, dlv = sql["evt"], sql["dlv"]
        into_events = "INSERT INTO events (position, stream_id, version, event_type, schema_version, data)"
        values = {"copies": copies, "base": base, "stride": stride, "evt0": event_id, "stream0": stream}
        # The event log: each copy's EventPublished, then its DeliveryScheduled events.
        conn.execute(
            text(
                f"{sql['series']}{into_events}"
                f" SELECT :base + (n.i - 1) * :stride + 1, replace(e.stream_id, :evt0, {evt}), e.version,"
                f" e.event_type, e.schema_version, replace(e.data, :evt0, {evt})"
                f" FROM {sql['from']} CROSS JOIN events e WHERE e.stream_id = :stream0"
            ),
            values,
        )
        conn.execute(
            text(
                f"{sql['series']}{into_events}"
                f" SELECT :base + (n.i - 1) * :stride + 1 + t.j, {dlv}, e.version, e.event_type,"
                f" e.schema_version, replace(replace(e.data, t.delivery_id, {dlv}), :evt0, {evt})"
                f" FROM {sql['from']} CROSS JOIN {_TEMPLATE} t JOIN events e ON e.stream_id = t.delivery_id"
            ),
            values,
        )
        conn.execute(
            text(
                f"{sql['series']}INSERT INTO published_events"
                " (account_id, event_id, event_type, body, occurred_at, published_at, test)"
                f" SELECT p.account_id, {evt}, p.event_type, replace(p.body, :evt0, {evt}), p.occurred_at,"
                f" p.published_at, p.test FROM {sql['from']} CROSS JOIN published_events p"
                " WHERE p.event_id = :evt0"
            ),
            values,
        )
        columns = (
            "account_id, endpoint_id, event_type, status, test, attempts, due_at, version, created_at,"
            " updated_at, last_attempt_at, last_status_code, last_error, queue_at, lease"
        )
        copied = ", ".join(f"d.{c.strip()}" for c in columns.split(","))
        conn.execute(
            text(
                f"{sql['series']}INSERT INTO deliveries (delivery_id, event_id, {columns})"
                f" SELECT {dlv}, {evt}, {copied}"
                f" FROM {sql['from']} CROSS JOIN {_TEMPLATE} t"
                " JOIN deliveries d ON d.delivery_id = t.delivery_id"
            ),
            values,
        )
        conn.execute(text(f"DROP TABLE {_TEMPLATE}"))


def fill(url: str, base_url: str, deliveries: int, endpoints: int = 100) -> dict[str, Any]:
    """Make ``url`` (a migrated, empty store) hold at least ``deliveries`` pending deliveries, to
    ``endpoints`` endpoints at ``base_url/q/NNNN``; returns how many and how long it took."""
    started = time.perf_counter()
    store = open_store(url, inline=True)
    try:
        event_id = asyncio.run(_template(store, base_url, endpoints))
        copies = max(0, -(-deliveries // endpoints) - 1)  # the template is the first copy
        if copies:
            _copy(store, event_id, copies)
    finally:
        store.close()
    return {"deliveries": (copies + 1) * endpoints, "seconds": time.perf_counter() - started}
