"""Publishing inside the caller's transaction (the transactional outbox), on SQLite and PostgreSQL:
a rollback delivers nothing, a commit delivers once per endpoint, and a commit whose wake-up
never comes is still delivered, by polling."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, insert, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from attribution_webhooks import Webhooks
from attribution_webhooks.adapters.sql.schema import events
from attribution_webhooks.app.services import DuplicateEventConflict, NewEvent
from attribution_webhooks.app.worker import DispatchSettings
from attribution_webhooks.core.delivery import DeliveryStatus
from attribution_webhooks.core.events import DeliveryScheduled, EventPublished
from receivers.scripted import ScriptedServer

SECRET = "an_outbox_secret_123456"
DATA = {"id": "partner_1", "name": "Acme Corp", "type": "referral", "status": "active"}

# The embedding service's own table, on the same database.
metadata = MetaData()
partners = Table("shop_partners", metadata, Column("id", String, primary_key=True), Column("n", Integer))


def _hooks(url: str | URL, poll: float = 60.0) -> Webhooks:
    """Webhooks whose dispatcher polls rarely (60 s by default): a delivery that arrives within a
    test's few seconds was woken, not found by a poll."""
    return Webhooks(
        url,
        mode="development",
        retry=[timedelta(seconds=1)],
        dispatch=DispatchSettings(poll_interval=timedelta(seconds=poll)),
    )


@pytest.fixture
def receiver() -> Iterator[ScriptedServer]:
    with ScriptedServer.running() as server:
        yield server


@asynccontextmanager
async def delivering(url: str | URL, receiver: ScriptedServer, poll: float = 60.0) -> AsyncIterator[Webhooks]:
    hooks = _hooks(url, poll)
    metadata.create_all(hooks.engine)
    try:
        await hooks.register(receiver.url("/a"), ["partner.created"], secret=SECRET)
        await hooks.register(receiver.url("/b"), ["partner.created"], secret=SECRET)
        async with hooks.running():
            yield hooks
    finally:
        hooks.close()


def _event_ids(receiver: ScriptedServer, path: str) -> list[str]:
    return [json.loads(r.body)["id"] for r in receiver.requests(path)]


def _write_and_publish(hooks: Webhooks, event_id: str, fail: bool) -> None:
    """The service's code: its row and the event in one transaction (on a worker thread)."""
    with hooks.begin() as conn:
        conn.execute(insert(partners).values(id=event_id, n=1))
        hooks.publish_in(conn, "partner.created", DATA, id=event_id)
        if fail:
            raise RuntimeError("the service's own write failed after publishing")


async def test_a_rolled_back_transaction_delivers_nothing_and_a_committed_one_once_per_endpoint(
    database_url: str | URL, receiver: ScriptedServer
) -> None:
    """Rolled back: neither the row nor the event exists, nothing is sent. Committed: both
    endpoints get the event exactly once, woken at commit (the dispatcher polls only every 60 s)."""
    async with delivering(database_url, receiver) as hooks:
        with pytest.raises(RuntimeError):
            await asyncio.to_thread(_write_and_publish, hooks, "evt_rolled_back", True)
        await asyncio.to_thread(_write_and_publish, hooks, "evt_committed", False)
        [delivered] = await hooks.deliveries(event_id="evt_committed", limit=1)
        published = await hooks.publish("partner.created", DATA, id="evt_committed")  # idempotent
        assert published.duplicate
        views = await hooks.wait(published, timeout=20)
        assert [v.delivery.status for v in views] == [DeliveryStatus.SUCCEEDED] * 2
        assert delivered.delivery.delivery_id in published.delivery_ids
        assert await hooks.service.store.event(hooks.account, "evt_rolled_back") is None
        assert await hooks.deliveries(event_id="evt_rolled_back") == []
        with hooks.engine.connect() as conn:
            assert conn.execute(select(partners.c.id)).scalars().all() == ["evt_committed"]
        await asyncio.sleep(0.3)  # time for a stray second delivery to show up
    assert _event_ids(receiver, "/a") == ["evt_committed"]
    assert _event_ids(receiver, "/b") == ["evt_committed"]


async def test_a_session_publishes_in_its_transaction(
    database_url: str | URL, receiver: ScriptedServer
) -> None:
    """An ORM Session: rollback leaves nothing, commit delivers; the flush of the service's own
    rows and the event commit together."""
    async with delivering(database_url, receiver) as hooks:

        def work(event_id: str, commit: bool) -> None:
            with Session(hooks.engine) as session:
                session.execute(insert(partners).values(id=event_id, n=2))
                hooks.publish_in(session, "partner.created", DATA, id=event_id)
                if commit:
                    session.commit()
                else:
                    session.rollback()

        await asyncio.to_thread(work, "evt_session_no", False)
        await asyncio.to_thread(work, "evt_session_yes", True)
        assert len(await hooks.deliveries(event_id="evt_session_yes")) == 2
        published = await hooks.publish("partner.created", DATA, id="evt_session_yes")
        await hooks.wait(published, timeout=20)
        assert await hooks.deliveries(event_id="evt_session_no") == []
    assert _event_ids(receiver, "/a") == _event_ids(receiver, "/b") == ["evt_session_yes"]


async def test_a_batch_in_a_transaction_is_one_append_with_a_result_per_event(
    database_url: str | URL, receiver: ScriptedServer
) -> None:
    """Three events, one of them published before and one repeated in the batch: the new ones
    are stored together, the known one comes back as a duplicate with its deliveries."""
    async with delivering(database_url, receiver) as hooks:
        first = await hooks.publish("partner.created", DATA, id="evt_b1")
        events = [NewEvent("partner.created", DATA, id=i) for i in ("evt_b1", "evt_b2", "evt_b3", "evt_b2")]
        with hooks.begin() as conn:
            results = hooks.publish_batch_in(conn, events)
        assert [r.event_id for r in results] == ["evt_b1", "evt_b2", "evt_b3", "evt_b2"]
        assert [r.duplicate for r in results] == [True, False, False, True]
        assert results[0].delivery_ids == first.delivery_ids
        assert results[3].delivery_ids == results[1].delivery_ids
        assert await _written_together(hooks, {"evt_b2", "evt_b3"}) == 6  # 2 events, 4 deliveries
        for result in results[1:3]:
            await hooks.wait(result, timeout=20)
        with hooks.begin() as conn, pytest.raises(DuplicateEventConflict):
            hooks.publish_in(conn, "partner.created", {**DATA, "name": "Other"}, id="evt_b2")


async def test_a_batch_publish_is_one_transaction(database_url: str | URL, receiver: ScriptedServer) -> None:
    """``publish_batch`` (no caller transaction) writes every event in one append."""
    async with delivering(database_url, receiver) as hooks:
        events = [NewEvent("partner.created", {**DATA, "id": f"partner_{i}"}) for i in range(50)]
        results = await hooks.publish_batch(events)
        assert len({r.event_id for r in results}) == 50
        assert all(len(r.delivery_ids) == 2 for r in results)
        assert await _written_together(hooks, {r.event_id for r in results}) == 150
        for result in results:
            await hooks.wait(result, timeout=30)
    assert len(receiver.requests("/a")) == len(receiver.requests("/b")) == 50


async def _written_together(hooks: Webhooks, event_ids: set[str]) -> int:
    """How many log entries publishing ``event_ids`` wrote, checking that they have consecutive
    positions: one append, with nothing else in between."""
    recorded = await hooks.store.read_all(0, 100_000)
    positions = [
        r.position
        for r in recorded
        if isinstance(r.event, EventPublished | DeliveryScheduled) and r.event.event_id in event_ids
    ]
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    return len(positions)


_CRASHING_SERVICE = """
import os
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from attribution_webhooks import Webhooks
from attribution_webhooks.adapters.sql.schema import events
from attribution_webhooks.adapters.sql.outbox import SqlOutbox

partners = Table("shop_partners", MetaData(), Column("id", String, primary_key=True), Column("n", Integer))

SqlOutbox.deliveries_due = lambda self: None  # no NOTIFY, no wake-up: it "crashes" before any
hooks = Webhooks({url!r}, mode="development")
with hooks.begin() as conn:
    conn.execute(insert(partners).values(id="evt_crash", n=3))
    hooks.publish_in(conn, "partner.created", {data!r}, id="evt_crash")
os._exit(9)  # right after the commit: no cleanup, no wake-up
"""


async def test_a_commit_whose_wake_up_never_comes_is_delivered_by_polling(
    database_url: str | URL, receiver: ScriptedServer
) -> None:
    """Another process commits an event and dies before any wake-up is sent: this process's
    dispatcher finds the deliveries at its next poll."""
    url = make_url(database_url).render_as_string(hide_password=False)
    async with delivering(database_url, receiver, poll=0.2):
        script = _CRASHING_SERVICE.format(url=url, data=DATA)
        crashed = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, timeout=60
        )
        assert crashed.returncode == 9, crashed.stderr
        for _ in range(400):
            if len(receiver.requests("/a")) + len(receiver.requests("/b")) == 2:
                break
            await asyncio.sleep(0.05)
    assert _event_ids(receiver, "/a") == _event_ids(receiver, "/b") == ["evt_crash"]


def test_a_transaction_on_another_database_or_without_one_is_refused(tmp_path: Path) -> None:
    """The outbox must write where the dispatchers read, inside a transaction."""
    folder = tmp_path
    hooks = _hooks(f"sqlite:///{folder / 'a.sqlite3'}")
    other = create_engine(f"sqlite:///{folder / 'b.sqlite3'}")
    try:
        with other.connect() as conn, pytest.raises(ValueError, match="another database"):
            hooks.publish_in(conn, "partner.created", DATA)
        with (
            hooks.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
            pytest.raises(ValueError, match="autocommit"),
        ):
            hooks.publish_in(conn, "partner.created", DATA)
        assert hooks.engine.connect().execute(select(func.count()).select_from(events)).scalar() == 0
    finally:
        hooks.close()
        other.dispose()


@pytest.mark.postgres
def test_postgres_needs_read_committed() -> None:
    """A snapshot older than the append lock would miss appends: REPEATABLE READ is refused."""
    from store_backends import migrated_postgres_database

    with migrated_postgres_database() as url:
        hooks = _hooks(url)
        try:
            conn = hooks.engine.connect().execution_options(isolation_level="REPEATABLE READ")
            with conn, conn.begin(), pytest.raises(ValueError, match="READ COMMITTED"):
                hooks.publish_in(conn, "partner.created", DATA)
        finally:
            hooks.close()
