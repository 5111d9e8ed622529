"""Accounts and their API keys, in the same database as the event log (not event-sourced: a key
is configuration, not a fact the delivery history depends on).

A key reads ``aw_<id>_<secret>``. Only the id (the prefix shown in listings) and the SHA-256 of
the whole key are stored: a key is 256 random bits, so a fast hash is as good as a slow one, and
it lets every request be checked without a key-stretching cost. The presented key's hash is
compared with ``hmac.compare_digest``, in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import datetime

from attrs import frozen
from sqlalchemy import Column, Engine, Index, String, Table, bindparam, insert, select, text, update

from .codec import require_aware
from .engine import write_options
from .schema import UtcDateTime, metadata

__all__ = ["ApiKey", "ApiKeyStore", "accounts", "api_keys", "key_id_of"]

_ID = 160

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(_ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("account_id", String(_ID), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index(None, "account_id"),
)

_KEY = re.compile(r"aw_([a-z0-9]{12})_[A-Za-z0-9_-]{43}")


@frozen
class ApiKey:
    """A key as listed: never the secret part, which is shown once, when it is created."""

    key_id: str
    account_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def prefix(self) -> str:
        return f"aw_{self.key_id}_…"


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, or None."""
    match = _KEY.fullmatch(key)
    return match.group(1) if match else None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyStore:
    """Accounts and API keys over a store's engine. Methods are synchronous (short queries);
    the HTTP API calls ``authenticate`` off the event loop and caches what it learns."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_account(self, account_id: str, name: str, now: datetime) -> bool:
        """Create the account unless it exists; True if it was created."""
        require_aware(now)
        with self.engine.connect() as conn:
            conn.execution_options(**write_options())
            with conn.begin():
                query = select(accounts.c.account_id).where(accounts.c.account_id == account_id)
                if conn.execute(query).first() is not None:
                    return False
                conn.execute(insert(accounts).values(account_id=account_id, name=name, created_at=now))
                return True

    def accounts(self) -> Sequence[str]:
        """Every account id, oldest first."""
        with self.engine.connect() as conn:
            query = select(accounts.c.account_id).order_by(accounts.c.created_at, accounts.c.account_id)
            return [row.account_id for row in conn.execute(query)]

    def account_exists(self, account_id: str) -> bool:
        with self.engine.connect() as conn:
            query = select(accounts.c.account_id).where(accounts.c.account_id == account_id)
            return conn.execute(query).first() is not None

    def create_key(self, account_id: str, name: str, now: datetime) -> tuple[ApiKey, str]:
        """A new key for an existing account: the record and the key itself (shown only now)."""
        require_aware(now)
        key_id = "".join(secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(12))
        key = f"aw_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, account_id, name, now)
        with self.engine.connect() as conn:
            conn.execution_options(**write_options())
            with conn.begin():
                conn.execute(
                    insert(api_keys).values(
                        key_id=key_id, account_id=account_id, name=name, key_hash=_digest(key), created_at=now
                    )
                )
        return record, key

    def authenticate(self, key: str) -> str | None:
        """The account of a valid, unrevoked key; None for anything else."""
        key_id = key_id_of(key)
        if key_id is None:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(_BY_ID, {"key_id": key_id}).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(_digest(key), row.key_hash):
            return None
        account_id: str = row.account_id
        return account_id

    def keys(self, account_id: str | None = None) -> Sequence[ApiKey]:
        """Every key (of one account), oldest first."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if account_id is not None:
            query = query.where(api_keys.c.account_id == account_id)
        with self.engine.connect() as conn:
            return [
                ApiKey(row.key_id, row.account_id, row.name, row.created_at, row.revoked_at)
                for row in conn.execute(query)
            ]

    def has_keys(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(api_keys.c.key_id).limit(1)).first() is not None

    def revoke(self, key_id: str, now: datetime) -> bool:
        """Revoke a key (by its id, with or without the ``aw_`` prefix); False if there is no
        such unrevoked key."""
        require_aware(now)
        key_id = key_id.removeprefix("aw_").split("_", 1)[0]
        with self.engine.connect() as conn:
            conn.execution_options(**write_options())
            with conn.begin():
                result = conn.execute(
                    update(api_keys)
                    .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                return bool(result.rowcount)

    def ping(self) -> None:
        """Raise if the database cannot answer a query."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


_BY_ID = select(api_keys.c.account_id, api_keys.c.key_hash, api_keys.c.revoked_at).where(
    api_keys.c.key_id == bindparam("key_id")
)
