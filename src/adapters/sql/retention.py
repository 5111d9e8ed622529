"""Retention in the SQL store (ADR 0018): removing finished history in short transactions.

Each call is one transaction that holds the append lock (SQLite: the write lock; PostgreSQL: the
appenders' advisory lock), so no append interleaves: a delivery judged final cannot be
redelivered between the check and the delete, and a removed stream cannot receive an event. The
rule is ``core.retention``'s; this module only selects the candidates by index, hands their
rows to the rule and deletes what it allows, a stream's events and its read-model rows together.
Claims do not take the append lock, but they only touch pending deliveries, which never qualify.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from attrs import frozen

from ...core.delivery import DeliveryStatus
from ...core.endpoint import EndpointStatus
from ...core.events import event_stream
from ...core.retention import PurgeReport, endpoint_purgeable, event_purgeable, next_cursor
from .codec import EndpointStates
from .connections import Connections
from .statements import Statements, chunks
from .times import TimeColumns

__all__ = ["SqlHistory"]

_DELETED = EndpointStatus.DELETED.value
_NEWEST_STREAM = "SELECT stream_id FROM events ORDER BY position DESC LIMIT 1"


@frozen
class SqlHistory:
    """The store's ``History`` port, run on the store's own thread (see ``SqlStore``)."""

    connections: Connections
    sql: Statements
    times: TimeColumns

    def _q(self, text: str) -> str:
        return text if self.sql.sqlite else text.replace("?", "%s")

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        with self.connections.transaction(self.sql.begin_append) as cursor:
            if self.sql.last_position is None:
                while cursor.nextset():  # psycopg: one result per statement of ``begin_append``
                    pass
            yield cursor

    def purge_events(
        self, horizon: datetime, now: datetime, after: tuple[datetime, str, str] | None, limit: int
    ) -> PurgeReport:
        to_db, from_db = self.times.to_db, self.times.from_db
        q = self._q
        with self._locked() as cursor:
            if after is None:
                cursor.execute(
                    q(
                        "SELECT published_at, account_id, event_id FROM published_events"
                        " WHERE published_at < ? ORDER BY published_at, account_id, event_id LIMIT ?"
                    ),
                    (to_db(horizon), limit),
                )
            else:
                cursor.execute(
                    q(
                        "SELECT published_at, account_id, event_id FROM published_events"
                        " WHERE published_at < ? AND (published_at, account_id, event_id) > (?, ?, ?)"
                        " ORDER BY published_at, account_id, event_id LIMIT ?"
                    ),
                    (to_db(horizon), to_db(after[0]), after[1], after[2], limit),
                )
            looked = [(from_db(row[0]), row[1], row[2]) for row in cursor.fetchall()]
            if not looked:
                return PurgeReport()
            by_event = self._deliveries_of(cursor, [(a, e) for _, a, e in looked])
            cursor.execute(_NEWEST_STREAM)
            newest = cursor.fetchone()
            newest_stream = None if newest is None else newest[0]
            gone: list[tuple[datetime, str, str]] = []
            delivery_ids: list[str] = []
            examined = 0
            for published_at, account_id, event_id in looked:
                if len(delivery_ids) >= limit:
                    break  # enough for one transaction: the rest is the next batch's
                examined += 1
                rows = by_event.get((account_id, event_id), [])
                statuses = [(DeliveryStatus(status), at) for _, status, at in rows]
                streams = {event_stream(account_id, event_id), *(row[0] for row in rows)}
                if event_purgeable(published_at, statuses, horizon) and newest_stream not in streams:
                    gone.append((published_at, account_id, event_id))
                    delivery_ids += [row[0] for row in rows]
            attempts = self._delete(cursor, gone, delivery_ids, now)
        cursor_out = next_cursor(looked, examined, limit)
        return PurgeReport(
            events=len(gone), deliveries=len(delivery_ids), attempts=attempts, cursor=cursor_out
        )

    def _deliveries_of(
        self, cursor: Any, events: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[tuple[str, str, datetime]]]:
        """Each event's deliveries as ``(delivery_id, status, updated_at)``, one query per account
        of the batch, by the index on ``(account_id, event_id)``. (A row-value ``IN (VALUES …)``
        list reads the same rows, but SQLite scans the whole table for it.)"""
        from_db = self.times.from_db
        by_account: dict[str, list[str]] = {}
        for account_id, event_id in events:
            by_account.setdefault(account_id, []).append(event_id)
        found: dict[tuple[str, str], list[tuple[str, str, datetime]]] = {}
        for account_id, event_ids in by_account.items():
            for chunk in chunks(event_ids):
                marks = ", ".join(["?"] * len(chunk))
                cursor.execute(
                    self._q(
                        "SELECT event_id, delivery_id, status, updated_at FROM deliveries"
                        f" WHERE account_id = ? AND event_id IN ({marks})"
                    ),
                    [account_id, *chunk],
                )
                for event_id, delivery_id, status, updated_at in cursor.fetchall():
                    found.setdefault((account_id, event_id), []).append(
                        (delivery_id, status, from_db(updated_at))
                    )
        return found

    def _delete(
        self, cursor: Any, gone: list[tuple[datetime, str, str]], delivery_ids: list[str], now: datetime
    ) -> int:
        """Delete the events' and deliveries' streams and rows, and leave tombstones; returns
        how many attempt rows went."""
        to_db = self.times.to_db
        q = self._q
        attempts = 0
        for chunk in chunks(delivery_ids):
            marks = ", ".join(["?"] * len(chunk))
            cursor.execute(q(f"DELETE FROM attempts WHERE delivery_id IN ({marks})"), list(chunk))
            attempts += max(cursor.rowcount, 0)
            cursor.execute(q(f"DELETE FROM deliveries WHERE delivery_id IN ({marks})"), list(chunk))
            cursor.execute(q(f"DELETE FROM events WHERE stream_id IN ({marks})"), list(chunk))
        streams = [event_stream(account_id, event_id) for _, account_id, event_id in gone]
        for chunk in chunks(streams):
            marks = ", ".join(["?"] * len(chunk))
            cursor.execute(q(f"DELETE FROM events WHERE stream_id IN ({marks})"), list(chunk))
        if gone:
            cursor.executemany(
                q("DELETE FROM published_events WHERE account_id = ? AND event_id = ?"),
                [(account_id, event_id) for _, account_id, event_id in gone],
            )
            cursor.executemany(
                q(
                    "INSERT INTO purged_events (account_id, event_id, published_at, purged_at)"
                    " VALUES (?, ?, ?, ?)"
                ),
                [(a, e, to_db(published_at), to_db(now)) for published_at, a, e in gone],
            )
        return attempts

    def purge_deleted(self, horizon: datetime, limit: int) -> PurgeReport:
        q = self._q
        states = EndpointStates()  # sealed: a deleted endpoint holds no secret anyway
        with self._locked() as cursor:
            cursor.execute(
                q(
                    "SELECT endpoint_id, account_id, state FROM endpoints"
                    " WHERE status = ? ORDER BY endpoint_id"
                ),
                (_DELETED,),
            )
            deleted = cursor.fetchall()
            cursor.execute(_NEWEST_STREAM)
            newest = cursor.fetchone()
            newest_stream = None if newest is None else newest[0]
            gone: list[str] = []
            for endpoint_id, account_id, text in deleted:
                if len(gone) >= limit:
                    break
                state = states.decode(text)
                if state.updated_at is None or state.updated_at >= horizon:
                    continue  # decided without the query below
                cursor.execute(
                    q("SELECT 1 FROM deliveries WHERE account_id = ? AND endpoint_id = ? LIMIT 1"),
                    (account_id, endpoint_id),
                )
                left = cursor.fetchone() is not None or endpoint_id == newest_stream
                if endpoint_purgeable(state.status, state.updated_at, left, horizon):
                    gone.append(endpoint_id)
            for endpoint_id in gone:
                cursor.execute(q("DELETE FROM events WHERE stream_id = ?"), (endpoint_id,))
                cursor.execute(q("DELETE FROM endpoints WHERE endpoint_id = ?"), (endpoint_id,))
                # Deleting the endpoint destroyed its keys already (ADR 0010): none may outlive it.
                cursor.execute(q("DELETE FROM secret_keys WHERE endpoint_id = ?"), (endpoint_id,))
            tombstones = self._expire_tombstones(cursor, horizon, limit)
        return PurgeReport(endpoints=len(gone), tombstones=tombstones)

    def _expire_tombstones(self, cursor: Any, horizon: datetime, limit: int) -> int:
        q = self._q
        cursor.execute(
            q(
                "SELECT account_id, event_id FROM purged_events"
                " WHERE purged_at < ? ORDER BY purged_at LIMIT ?"
            ),
            (self.times.to_db(horizon), limit),
        )
        expired = cursor.fetchall()
        if expired:
            cursor.executemany(
                q("DELETE FROM purged_events WHERE account_id = ? AND event_id = ?"),
                [tuple(row) for row in expired],
            )
        return len(expired)

    def purged_event(self, account_id: str, event_id: str) -> tuple[datetime, datetime] | None:
        rows = self.connections.query(
            self._q(
                "SELECT published_at, purged_at FROM purged_events WHERE account_id = ? AND event_id = ?"
            ),
            (account_id, event_id),
        )
        if not rows:
            return None
        from_db = self.times.from_db
        return from_db(rows[0][0]), from_db(rows[0][1])
