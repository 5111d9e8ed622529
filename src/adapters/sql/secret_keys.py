"""The data keys that seal webhook secrets (``secret_keys``), and the development master key.

One data key per stored secret, wrapped by a master key of the keyring (``crypto.py``). The
rows are key material, not a read model: a rebuild leaves them alone. Destroying a row shreds
the secret it sealed, in the log and in the read models at once (ADR 0010). SQLite overwrites a
deleted row's bytes (``secure_delete``, ``engine.py``) and the write-ahead log is truncated
after keys are destroyed, so no copy of a destroyed key stays in the database's files.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from attrs import define, field
from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ...core.endpoint import Endpoint
from ...core.events import DomainEvent
from ...core.ports import RecordedEvent
from ..crypto import Keyring, KeyringError, MasterKey, generate_master_key, open_secret, seal_secret
from ..sealing import (
    SECRET_EVENTS,
    SHREDDED,
    KeyChanges,
    key_of,
    make_token,
    open_endpoint,
    open_recorded,
    seal_event,
    tokens_in,
)
from .codec import EndpointStates
from .connections import Connections
from .engine import write_options
from .schema import development_key as development_key_table
from .schema import secret_keys as secret_keys_table
from .statements import chunks
from .times import TimeColumns

__all__ = ["DEVELOPMENT_KEY_NOTE", "SqlKeys", "development_key", "store_keyring"]


#: Expired keys are looked for at most this often (by the time the claims pass in).
PURGE_INTERVAL = timedelta(seconds=10)

DEVELOPMENT_KEY_NOTE = (
    "no ATTRIBUTION_WEBHOOKS_SECRET_KEYS: webhook secrets are encrypted with a development key "
    "kept IN THE DATABASE, which protects nothing if the database leaks. Production requires the "
    "setting (make a key: python3 -c 'import base64,os; "
    "print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
)


def _read_development_key(conn: Connection) -> str | None:
    query = select(development_key_table.c.key).where(development_key_table.c.name == "development")
    found: str | None = conn.execute(query).scalar()
    return found


def development_key(conn: Connection) -> MasterKey:
    """The database's development master key, created on first use (development mode only)."""
    found = _read_development_key(conn)
    if found is None:
        insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
        row = {"name": "development", "key": generate_master_key(), "created_at": datetime.now(UTC)}
        # Two processes starting at once: one key wins, both read it back.
        conn.execute(insert(development_key_table).values(row).on_conflict_do_nothing())
        found = _read_development_key(conn)
        assert found is not None
    return MasterKey.from_text(found)


def store_keyring(engine: Engine, configured: Keyring | None) -> Keyring | None:
    """The keyring a store uses: the configured one, which can still open what an earlier
    development key wrapped; without one, the development key (created if need be; the service
    says so loudly on every start: ``DEVELOPMENT_KEY_NOTE``).
    None: no key given for a database whose secrets configured keys seal (nothing that touches a
    secret works then, and no development key is made beside those)."""
    with engine.connect() as conn:
        found = _read_development_key(conn)
        if configured is not None:
            return configured if found is None else configured.also(MasterKey.from_text(found))
        if found is None and conn.execute(select(secret_keys_table.c.key_id).limit(1)).first():
            return None
        conn.rollback()  # end the read; the key is made in a write transaction of its own
        conn.execution_options(**write_options())
        with conn.begin():
            key = development_key(conn)
    return Keyring((key,))


@define
class SqlKeys:
    """Creates, opens, expires and destroys data keys on the store's connections."""

    keyring: Keyring | None  # None: see ``store_keyring``
    connections: Connections
    sqlite: bool
    times: TimeColumns
    #: Endpoint states with their secrets opened, by row text: what the store's ports hand out.
    states: EndpointStates = field(init=False)
    _next_purge: datetime | None = field(default=None, init=False)
    _destroyed: bool = field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self.states = EndpointStates(finish=self.open_states)

    @property
    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise KeyringError(
                "the webhook secrets of this database are encrypted with configured keys: "
                "set ATTRIBUTION_WEBHOOKS_SECRET_KEYS"
            )
        return self.keyring

    def _sql(self, statement: str) -> str:
        return statement if self.sqlite else statement.replace("?", "%s")

    # --- sealing, before the append's transaction

    def seal(self, events: Sequence[DomainEvent]) -> tuple[list[DomainEvent], list[tuple[str, ...]]]:
        """``events`` with their secrets sealed, and the key rows to insert with them."""
        if not any(isinstance(event, SECRET_EVENTS) for event in events):
            return list(events), []  # the usual append (a delivery's outcome): nothing to seal
        rows: list[tuple[str, ...]] = []

        def new_token(endpoint_id: str, secret: str) -> str:
            if key_of(secret) is not None or secret == SHREDDED:
                return secret
            key = self._ring.new_data_key(f"sk_{secrets.token_hex(12)}")
            rows.append((key.key_id, endpoint_id, key.master_id, key.wrapped))
            return make_token(key.key_id, seal_secret(key, secret))

        return [seal_event(event, new_token) for event in events], rows

    # --- inside the append's transaction

    def insert(self, cursor: Any, rows: list[tuple[str, ...]]) -> None:
        statement = "INSERT INTO secret_keys (key_id, endpoint_id, master_id, wrapped) VALUES (?, ?, ?, ?)"
        cursor.executemany(self._sql(statement), rows)

    def apply(self, cursor: Any, changes: Sequence[KeyChanges]) -> None:
        for change in changes:
            for key_id in change.destroy:
                cursor.execute(self._sql("DELETE FROM secret_keys WHERE key_id = ?"), (key_id,))
                self._destroyed = True
            for key_id, at in change.expire:
                statement = "UPDATE secret_keys SET destroy_after = ? WHERE key_id = ?"
                cursor.execute(self._sql(statement), (self.times.to_db(at), key_id))
            if change.endpoint_deleted is not None:
                statement = "DELETE FROM secret_keys WHERE endpoint_id = ?"
                cursor.execute(self._sql(statement), (change.endpoint_deleted,))
                self._destroyed = True

    def after_commit(self) -> None:
        """SQLite: once keys are destroyed, empty the write-ahead log, which still holds their
        pages (best effort: a checkpoint cannot pass a reader; the next one finishes the job)."""
        if self._destroyed and self.sqlite:
            self._destroyed = False
            self.connections.query("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- reading

    def open(self, tokens: Collection[str]) -> dict[str, str]:
        """Each token → its secret, or SHREDDED if its key is gone. KeyringError if a key is
        there but none of the keyring's master keys opens it."""
        if not tokens:
            return {}
        by_key = {key_of(token): token for token in tokens}
        rows: list[Any] = []
        statement = self._sql("SELECT key_id, master_id, wrapped FROM secret_keys WHERE key_id IN ({})")
        for chunk in chunks(sorted(k for k in by_key if k is not None)):
            marks = ", ".join(["?" if self.sqlite else "%s"] * len(chunk))
            rows += self.connections.query(statement.format(marks), chunk)
        keys = {row[0]: self._ring.unwrap(row[0], row[1], row[2]) for row in rows}
        opened: dict[str, str] = {}
        for token in tokens:
            _, key_id, ciphertext = token.split(" ", 2)
            key = keys.get(key_id)
            opened[token] = SHREDDED if key is None else open_secret(key_id, key, ciphertext)
        return opened

    def open_events(self, recorded: list[RecordedEvent]) -> list[RecordedEvent]:
        opened = self.open(tokens_in(item.event for item in recorded))
        return [open_recorded(item, opened) for item in recorded] if opened else recorded

    def open_states(self, states: list[Endpoint]) -> list[Endpoint]:
        opened = self.open(tokens_in(states))
        return [open_endpoint(state, opened) for state in states]

    # --- maintenance

    def purge(self, now: datetime, *, force: bool = False) -> int:
        """Destroy the keys whose grace period has ended by ``now``; at most once per
        ``PURGE_INTERVAL`` of ``now`` unless ``force``. Returns how many."""
        if not force and self._next_purge is not None and now < self._next_purge:
            return 0
        self._next_purge = now + PURGE_INTERVAL
        begin = "BEGIN IMMEDIATE" if self.sqlite else "BEGIN"
        statement = "DELETE FROM secret_keys WHERE destroy_after IS NOT NULL AND destroy_after <= ?"
        with self.connections.transaction(begin) as cursor:
            cursor.execute(self._sql(statement), (self.times.to_db(now),))
            destroyed: int = cursor.rowcount
        if destroyed:
            self._destroyed = True
            self.after_commit()
            self.states.clear()  # a state's text is unchanged, but what it opens to is not
        return destroyed

    def rewrap(self) -> int:
        """Wrap every data key with the newest master key (after a new key is put first in the
        keyring: then the older ones can be dropped from it). Returns how many were rewrapped."""
        ring = self._ring
        newest = ring.newest.key_id
        select = self._sql("SELECT key_id, master_id, wrapped FROM secret_keys WHERE master_id <> ?")
        update = self._sql(
            "UPDATE secret_keys SET master_id = ?, wrapped = ? WHERE key_id = ? AND master_id = ?"
        )
        rows = self.connections.query(select, (newest,))
        if not rows:
            return 0
        with self.connections.transaction("BEGIN IMMEDIATE" if self.sqlite else "BEGIN") as cursor:
            for key_id, master_id, wrapped in rows:
                key = ring.wrap(key_id, ring.unwrap(key_id, master_id, wrapped))
                cursor.execute(update, (key.master_id, key.wrapped, key_id, master_id))
        return len(rows)
