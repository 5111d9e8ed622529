"""Opening a store on a URL: the engine, the schema check or upgrade, the keyring (ADR 0010)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import URL

from ..crypto import Keyring
from .codec import EventCodec
from .engine import DEFAULT_URL, create_engine, is_sqlite
from .migrate import check_schema, ensure_schema
from .secret_keys import store_keyring
from .store import SqlStore

__all__ = ["open_store", "rebuild_read_models"]


def open_store(
    url: str | URL | None = None,
    *,
    inline: bool = False,
    pool_size: int = 4,
    codec: EventCodec | None = None,
    migrate: bool | None = None,
    keyring: Keyring | None = None,
) -> SqlStore:
    """A store on ``url`` (default: ``DEFAULT_URL``, a SQLite file in the working directory).

    SQLite's schema is created or upgraded here (``migrate`` defaults to True for it); for
    PostgreSQL ``migrate`` defaults to False and the schema must already be at the latest
    revision (``attribution_webhooks.adapters.sql.upgrade``, the CLI's ``db upgrade``).
    ``inline`` runs the database work on the caller's thread: see the module's docstring.
    ``keyring`` seals webhook secrets (ADR 0010); without one, a development key kept in the
    database does (the app refuses that in production mode).
    """
    engine = create_engine(url or DEFAULT_URL, pool_size=pool_size)
    try:
        if migrate if migrate is not None else is_sqlite(engine):
            ensure_schema(engine, keyring)
        else:
            check_schema(engine)
        ring = store_keyring(engine, keyring)
    except BaseException:
        engine.dispose()
        raise
    threads = 1 if is_sqlite(engine) else pool_size
    executor = None if inline else ThreadPoolExecutor(threads, thread_name_prefix="aw-store")
    development = keyring is None and ring is not None
    return SqlStore(engine, codec or EventCodec(), executor, keyring=ring, development_key=development)


def rebuild_read_models(
    url: str | URL, *, codec: EventCodec | None = None, keyring: Keyring | None = None
) -> int:
    """Rebuild the read models of the database at ``url`` from its event log (the CLI's command)."""
    store = open_store(url, inline=True, codec=codec, keyring=keyring)
    try:
        return store.rebuild_read_models()
    finally:
        store.close()
