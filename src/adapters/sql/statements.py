"""The hot paths' SQL, written once per dialect and run through the DBAPI cursor.

Claims, appends with their projections, endpoint lookups and ``next_due`` run many times a
second; going through SQLAlchemy's per-execution machinery (cache keys, compiled parameter
construction, type processors per row) cost them more than the database did. So they are plain
SQL text, bound positionally (``?`` for sqlite3, ``%s`` for psycopg), with times converted by
``times.py``. The tables themselves, migrations and the cold paths (the API's queries, the
rebuild's reads) stay SQLAlchemy Core; the contract suite runs both over the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import TypeVar

from attrs import frozen

from ...core.endpoint import EndpointStatus

__all__ = ["APPEND_LOCK", "Statements", "chunks", "postgres_statements", "sqlite_statements"]

#: Appends on PostgreSQL take this transaction-scoped advisory lock: positions are then assigned
#: in commit order, so a reader following ``read_all`` never sees position n + 1 before n.
APPEND_LOCK = 0x61775F65  # "aw_e"

T = TypeVar("T")

_DELIVERY_STATE = (
    "delivery_id, status, account_id, endpoint_id, event_id, event_type, test, attempts, due_at, version"
)
_LIVE = (EndpointStatus.ENABLED.value, EndpointStatus.DISABLED.value)


_LAST_POSITION = "SELECT coalesce(max(position), 0) FROM events"
_EVENT = "SELECT position, stream_id, version, event_type, schema_version, data FROM events"
_IN_LIST_LIMIT = 500  # parameters in one IN list, well below every backend's limit


def _values(count: int) -> str:
    return "(" + ", ".join(["?"] * count) + ")"


_CLAIM_SQLITE = (
    f"SELECT d.{_DELIVERY_STATE.replace(', ', ', d.')}, p.body, d.lease_attempt"
    " FROM deliveries AS d JOIN published_events AS p"
    " ON p.account_id = d.account_id AND p.event_id = d.event_id"
    " WHERE d.queue_at IS NOT NULL AND d.queue_at <= ?"
    " ORDER BY d.queue_at, d.delivery_id LIMIT ?"
)
# A lease is soft state, so its statements commit without waiting for the WAL flush
# (``synchronous_commit`` off for their own transaction, set by ``_ASYNC_COMMIT`` as a one-row
# FROM item: one statement, one round trip). Were the server to crash before the WAL reached the
# disk (a fraction of a second; the next durable commit of any session flushes it too), the
# lease would be forgotten and the delivery due again: the outcome, recorded by a durable append,
# is what counts, and at least once holds. Waiting for a flush per claim serialised the workers
# on WALSync behind the appends' commits (ADR 0004, addendum "Scale-out on PostgreSQL").
_ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
# One statement, so one round trip and its own transaction: the earliest due rows are locked
# (rows another claimer holds are skipped), leased, and returned with their body and the due
# time they had before the lease, which orders them. Each lease takes the next attempt number.
_CLAIM_POSTGRES = (
    "WITH due AS (SELECT delivery_id, queue_at FROM deliveries"
    " WHERE queue_at IS NOT NULL AND queue_at <= %s"
    " ORDER BY queue_at, delivery_id LIMIT %s FOR UPDATE SKIP LOCKED)"
    " UPDATE deliveries AS d SET queue_at = %s, lease = %s,"
    " lease_attempt = greatest(coalesce(d.lease_attempt, 0), d.attempts) + 1"
    f" FROM due, published_events AS p, {_ASYNC_COMMIT}"
    # The ids as an array too: the rows are then found through the primary key. Joined on the CTE
    # alone, the planner hashed it against a sequential scan of the whole table whenever it
    # thought the table small enough (10 thousand rows and a LIMIT of 128: 16 ms instead of 0.6).
    " WHERE d.delivery_id = ANY (ARRAY(SELECT delivery_id FROM due)) AND d.delivery_id = due.delivery_id"
    " AND p.account_id = d.account_id AND p.event_id = d.event_id"
    f" RETURNING d.{_DELIVERY_STATE.replace(', ', ', d.')}, p.body, d.lease_attempt, due.queue_at"
)
# The heartbeat's renewal of every lease a worker holds, in one statement (ids and leases as two
# arrays). A row locked by another transaction is skipped rather than waited for: that is the
# worker's own outcome being recorded (which ends the lease) or another claimer taking a lease
# that already lapsed (which ends it too). Waiting made a convoy: the renewal held the rows it
# had updated while it waited for one that an append held, the append (holding the append lock)
# then waited for the renewal's rows, and every other append waited for the lock.
_RENEW_POSTGRES = (
    "WITH held AS (SELECT d.delivery_id FROM deliveries AS d"
    " JOIN unnest(%s::text[], %s::text[]) AS l(delivery_id, lease)"
    " ON d.delivery_id = l.delivery_id AND d.lease = l.lease"
    " FOR UPDATE OF d SKIP LOCKED)"
    f" UPDATE deliveries AS d SET queue_at = %s FROM held, {_ASYNC_COMMIT}"
    " WHERE d.delivery_id = held.delivery_id RETURNING d.delivery_id"
)


@frozen
class Statements:
    """The SQL of one dialect. Statements with ``{}`` take an ``IN`` list: see ``in_list``."""

    sqlite: bool
    #: Opens a write transaction that holds the append lock (SQLite: the database's write lock).
    begin_append: str
    #: The last position, read under that lock; None when ``begin_append`` reads it itself
    #: (its last result), which saves PostgreSQL a round trip.
    last_position: str | None
    #: Opens a write transaction for releases (and SQLite's claims): no append lock on PostgreSQL.
    begin_claim: str
    #: SQLite: the due rows, earliest first, in the claiming transaction, leased by ``lease``
    #: after. PostgreSQL: the whole claim, run on its own (see ``_CLAIM_POSTGRES``).
    claim: str
    lease: str
    #: SQLite: one row ``(until, delivery_id, lease)`` per execution, in a write transaction.
    #: PostgreSQL: the whole renewal, ``(delivery_ids, leases, until)``, run on its own.
    renew: str
    release: str
    next_due: str
    stream_versions: str
    insert_events: str
    load_deliveries: str
    insert_delivery: str
    update_delivery: str
    replace_delivery: str
    #: The first rows of an endpoint's line (``_DELIVERY_STATE``, ``line_position``, ``queue_at``).
    line_heads: str
    #: Puts a parked delivery that became its line's head in the queue (ADR 0016).
    promote: str
    load_endpoints: str
    insert_endpoint: str
    update_endpoint: str
    update_failing_since: str  # and ``failures``: an endpoint's health after attempts
    insert_published: str
    insert_attempt: str
    endpoints: str
    subscribers: str
    #: Rows of ``events`` (``position, stream_id, version, event_type, schema_version, data``).
    read_stream: str
    read_after: str

    def in_list(self, statement: str, count: int) -> str:
        """``statement`` with its ``IN ({})`` list holding ``count`` parameters."""
        return _in_list(statement, count, "?" if self.sqlite else "%s")


@lru_cache(maxsize=1024)
def _in_list(statement: str, count: int, mark: str) -> str:
    return statement.format(", ".join([mark] * count))


def chunks(ids: Sequence[T]) -> Iterator[Sequence[T]]:
    """``ids`` in pieces that fit one ``IN`` list."""
    for start in range(0, len(ids), _IN_LIST_LIMIT):
        yield ids[start : start + _IN_LIST_LIMIT]


def _statements(sqlite: bool) -> Statements:
    def sql(text: str) -> str:
        # psycopg's placeholder is %s; no statement holds a literal ? or %.
        return text if sqlite else text.replace("?", "%s")

    return Statements(
        sqlite=sqlite,
        begin_append=(
            "BEGIN IMMEDIATE"
            if sqlite
            # One round trip: psycopg sends a string without parameters as one simple query.
            else f"BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK}); {_LAST_POSITION}"
        ),
        last_position=_LAST_POSITION if sqlite else None,
        begin_claim="BEGIN IMMEDIATE" if sqlite else "BEGIN",
        claim=_CLAIM_SQLITE if sqlite else _CLAIM_POSTGRES,
        lease=sql(
            "UPDATE deliveries SET queue_at = ?, lease = ?,"
            " lease_attempt = max(coalesce(lease_attempt, 0), attempts) + 1 WHERE delivery_id IN ({})"
        ),
        renew=(
            "UPDATE deliveries SET queue_at = ? WHERE delivery_id = ? AND lease = ?"
            if sqlite
            else _RENEW_POSTGRES
        ),
        release=sql(
            "UPDATE deliveries SET queue_at = ?, lease = NULL, lease_attempt = ?"
            " WHERE delivery_id = ? AND lease = ?"
        ),
        next_due="SELECT queue_at FROM deliveries WHERE queue_at IS NOT NULL ORDER BY queue_at LIMIT 1",
        stream_versions=(
            "SELECT stream_id, max(version) FROM events WHERE stream_id IN ({}) GROUP BY stream_id"
        ),
        insert_events=sql(
            "INSERT INTO events (position, stream_id, version, event_type, schema_version, data)"
            " VALUES " + _values(6)
        ),
        load_deliveries=(
            f"SELECT {_DELIVERY_STATE}, last_attempt_at, last_status_code, last_error, created_at,"
            " updated_at, line_position FROM deliveries WHERE delivery_id IN ({})"
        ),
        insert_delivery=sql(
            "INSERT INTO deliveries (delivery_id, account_id, endpoint_id, event_id, event_type, status,"
            " test, attempts, due_at, version, created_at, updated_at, last_attempt_at, last_status_code,"
            " last_error, queue_at, lease, line_position) VALUES " + _values(18)
        ),
        # Any recorded change ends the lease (and settles its attempt number: recorded, or
        # abandoned) and puts the delivery where its state says. The columns a delivery's later
        # events never change (ids, type, creation) are left alone.
        update_delivery=sql(
            "UPDATE deliveries SET status = ?, attempts = ?, due_at = ?, version = ?, updated_at = ?,"
            " last_attempt_at = ?, last_status_code = ?, last_error = ?, queue_at = ?, lease = NULL,"
            " lease_attempt = NULL, line_position = ? WHERE delivery_id = ?"
        ),
        # A delivery scheduled again over an existing row: every column.
        replace_delivery=sql(
            "UPDATE deliveries SET account_id = ?, endpoint_id = ?, event_id = ?, event_type = ?,"
            " status = ?, test = ?, attempts = ?, due_at = ?, version = ?, created_at = ?, updated_at = ?,"
            " last_attempt_at = ?, last_status_code = ?, last_error = ?, queue_at = ?, lease = NULL,"
            " lease_attempt = NULL, line_position = ? WHERE delivery_id = ?"
        ),
        line_heads=sql(
            f"SELECT {_DELIVERY_STATE}, line_position, queue_at FROM deliveries"
            " WHERE endpoint_id = ? AND line_position IS NOT NULL ORDER BY line_position LIMIT ?"
        ),
        # Only a parked row (never leased: only heads are claimed) is touched.
        promote=sql(
            "UPDATE deliveries SET queue_at = ? WHERE delivery_id = ? AND queue_at IS NULL AND lease IS NULL"
        ),
        load_endpoints=(
            "SELECT endpoint_id, version, failing_since, registered_position, state, failures"
            " FROM endpoints WHERE endpoint_id IN ({})"
        ),
        insert_endpoint=sql(
            "INSERT INTO endpoints (endpoint_id, account_id, status, version, failing_since,"
            " registered_position, state, failures) VALUES " + _values(8)
        ),
        update_endpoint=sql(
            "UPDATE endpoints SET account_id = ?, status = ?, version = ?, failing_since = ?,"
            " registered_position = ?, state = ?, failures = ? WHERE endpoint_id = ?"
        ),
        update_failing_since=sql(
            "UPDATE endpoints SET failing_since = ?, failures = ? WHERE endpoint_id = ?"
        ),
        insert_published=sql(
            "INSERT INTO published_events (account_id, event_id, event_type, body, occurred_at,"
            " published_at, test) VALUES " + _values(7)
        ),
        insert_attempt=sql(
            "INSERT INTO attempts (position, delivery_id, attempt, started_at, elapsed_ms, succeeded,"
            " status_code, error, detail, response_body) VALUES " + _values(10)
        ),
        endpoints=(
            "SELECT endpoint_id, version, failing_since, state, failures FROM endpoints"
            " WHERE endpoint_id IN ({})"
        ),
        subscribers=sql(
            "SELECT endpoint_id, version, failing_since, state, failures FROM endpoints"
            f" WHERE account_id = ? AND status IN ('{_LIVE[0]}', '{_LIVE[1]}') ORDER BY registered_position"
        ),
        read_stream=sql(f"{_EVENT} WHERE stream_id = ? ORDER BY version"),
        read_after=sql(f"{_EVENT} WHERE position > ? ORDER BY position LIMIT ?"),
    )


sqlite_statements = _statements(sqlite=True)
postgres_statements = _statements(sqlite=False)
