"""Wake-ups between processes over PostgreSQL's LISTEN/NOTIFY.

A dispatcher hears of work published in its own process at once (it listens to the service).
Work published by another process (an API node, another worker) it would only find at its next
poll. On PostgreSQL, ``PostgresWakeups`` closes that gap: subscribed to the process's notice
board, it sends a NOTIFY whenever deliveries become due or an endpoint changes; ``listen``
passes every NOTIFY from other processes on to the local dispatcher. A NOTIFY is sent after the
append has committed (the use cases announce after the append returns), so a woken
dispatcher always finds the work. Notifications are an optimisation: a lost one costs at most
a poll interval, and polling stays on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL, make_url

if TYPE_CHECKING:  # psycopg is the optional "postgres" extra: imported only when it is used
    import psycopg

from ...core.ports import Notices

__all__ = ["CHANNEL", "PostgresWakeups", "libpq_conninfo"]

log = logging.getLogger(__name__)

#: The NOTIFY channel. Payloads: ``due`` or ``endpoint:<id>``.
CHANNEL = "attribution_webhooks"
_DUE = "due"
_ENDPOINT = "endpoint:"


def libpq_conninfo(url: str | URL) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL (any driver suffix dropped)."""
    plain = make_url(url).set(drivername="postgresql")
    return plain.render_as_string(hide_password=False)


class PostgresWakeups:
    """Sends and receives wake-ups on one database. Use ``async with``; not thread-safe."""

    def __init__(self, url: str | URL) -> None:
        self._conninfo = libpq_conninfo(url)
        self._sender: psycopg.AsyncConnection[object] | None = None
        self._pending: set[str] = set()
        self._flushing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PostgresWakeups:
        import psycopg

        self._sender = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        if self._sender is not None:
            await self._sender.close()
            self._sender = None

    # --- Notices: what this process tells the others ---------------------------------

    def deliveries_due(self) -> None:
        self._send(_DUE)

    def endpoint_changed(self, endpoint_id: str) -> None:
        self._send(_ENDPOINT + endpoint_id)

    def _send(self, payload: str) -> None:
        # Coalesced: while one batch of NOTIFYs is on the wire, later ones wait for the next.
        self._pending.add(payload)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        import psycopg

        while self._pending and self._sender is not None:
            payloads, self._pending = sorted(self._pending), set()
            try:
                async with self._sender.transaction():
                    for payload in payloads:
                        await self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except psycopg.Error as error:
                log.warning("could not send wake-ups (workers will poll instead): %s", error)
                return

    # --- what the others tell this process ----------------------------------------------------

    async def listen(self, listener: Notices, stop: asyncio.Event) -> None:
        """Pass every wake-up from the database to ``listener`` until ``stop`` is set. Reconnects
        after a lost connection; never raises for database trouble."""
        import psycopg

        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    listener.deliveries_due()  # anything published while we were not listening
                    await _until(stop, self._forward(conn, listener))
            except psycopg.Error as error:
                log.warning("lost the wake-up connection (polling meanwhile): %s", error)
                await _until(stop, asyncio.sleep(1.0))

    @staticmethod
    async def _forward(conn: psycopg.AsyncConnection[object], listener: Notices) -> None:
        async for notice in conn.notifies():
            if notice.payload.startswith(_ENDPOINT):
                listener.endpoint_changed(notice.payload[len(_ENDPOINT) :])
            else:
                listener.deliveries_due()


async def _until(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until it ends or ``stop`` is set; its exception, if any, is raised."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopper):
            pending.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
    if task.done() and not task.cancelled() and (error := task.exception()) is not None:
        raise error
